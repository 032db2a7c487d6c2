#!/bin/sh
# test_report.sh: reports and comparisons end to end, from tiny real runs (CIFAR-10
# and MNIST subsets; skipped where ../shared/data is missing): every figure is a
# real PNG of the expected size with non-trivial content, report.html is
# self-contained, `cnnlab report` regenerates it, `cnnlab compare` writes its table
# and figures, bad input fails with a message, and headless Chromium renders the
# report: the screenshot is not blank, every image loads and the console stays
# silent (a control page with a broken image and a script error must be caught).
# Prints "ok - NAME" / "FAIL - NAME: ..." and "N passed, N failed".
cd "$(dirname "$0")/.." || exit 2
. tests/lib.sh
PNGSTAT=$BUILD/tests/pngstat
make_tmp report

have_data || skip_all "report" "no ../shared/data"

# png_ok NAME FILE MIN_W MIN_H: a real PNG at least MIN_W x MIN_H, with anti-aliased
# content (many colours) that neither leaves it white nor fills it.
png_ok() {
    if ! stat=$("$PNGSTAT" "$2" 2>&1); then
        fail "$1" "$stat"
        return
    fi
    set -- "$1" "$2" "$3" "$4" $stat
    if [ "$5" -ge "$3" ] && [ "$6" -ge "$4" ] && [ "$7" -ge 64 ] &&
        awk "BEGIN { exit !($8 > 0.01 && $8 < 0.97) }"; then
        ok "$1: ${5}x$6, $7 colours, $8 non-white"
    else
        fail "$1" "${5}x$6 (want at least ${3}x$4), $7 colours (want >= 64), non-white $8 (want 0.01..0.97)"
    fi
}

# -- a tiny CIFAR-10 run writes its report ------------------------------------------
run=$tmp/runs/bn
if "$CNNLAB" train models/cifar10_bn.net --epochs 2 --train-subset 1000 --test-subset 500 \
    --batch 50 --aug hflip --out "$run" >"$tmp/train.log" 2>&1 && grep -q "^Report: $run/report.html" "$tmp/train.log"; then
    ok "train writes the report"
else
    fail "train writes the report" "$(tail -n 3 "$tmp/train.log")"
fi
png_ok "curves.png" "$run/curves.png" 1000 600
png_ok "lr.png" "$run/lr.png" 1000 300
png_ok "per_class.png" "$run/per_class.png" 700 350
png_ok "confusion.png" "$run/confusion.png" 600 600
png_ok "misclassified.png" "$run/misclassified.png" 400 400
png_ok "gradcam.png" "$run/gradcam.png" 400 400
[ "$(wc -l <"$run/per_class.csv")" -eq 11 ] && head -n 1 "$run/per_class.csv" | grep -q "^class,name,correct,total,accuracy$" &&
    ok "per_class.csv: a header and 10 classes" || fail "per_class.csv" "$(head -n 2 "$run/per_class.csv")"
total=$(awk -F, 'NR > 1 { t += $4 } END { print t }' "$run/per_class.csv")
[ "$total" = 500 ] && ok "per_class.csv counts the 500 test images" || fail "per_class.csv" "totals $total, expected 500"

html=$run/report.html
imgs=$(grep -o '<img ' "$html" | wc -l)
data=$(grep -o 'src="data:image/png;base64,[A-Za-z0-9+/=]*"' "$html" | wc -l)
[ "$imgs" -eq 6 ] && [ "$data" -eq 6 ] && ok "report.html embeds its 6 figures as data: URIs" ||
    fail "report.html" "$imgs <img>, $data embedded PNGs (want 6 and 6)"
grep -Eq '(src|href)="(https?:)?//' "$html" && fail "report.html" "refers to the network" ||
    ok "report.html refers to nothing on the network"
for want in "Training curves" "Test set, epoch" "Misclassified images" "Metrics per epoch" \
    "Model" "Configuration" "aug=hflip" "Grad-CAM"; do
    grep -q "$want" "$html" || fail "report.html" "no '$want'"
done
ok "report.html has its sections"
ls "$run" | grep -q '\.tmp$' && fail "report files" "a temporary file is left" || ok "report files are written atomically"

# -- cnnlab report regenerates; bad input fails --------------------------------------
rm -f "$run/curves.png" "$run/report.html"
if "$CNNLAB" report "$run" --show 7 >"$tmp/report.log" 2>&1 && [ -s "$run/curves.png" ] && [ -s "$run/report.html" ]; then
    ok "cnnlab report regenerates the figures and report.html"
else
    fail "cnnlab report" "$(tail -n 3 "$tmp/report.log")"
fi
[ "$(grep -c '^<tr><td>[0-9]*</td><td>[0-9]*</td><td class="l">' "$html")" -eq 7 ] &&
    ok "report --show 7 lists 7 mistakes" || fail "report --show" "not 7 rows of mistakes"
"$CNNLAB" report "$tmp/nothing" >"$tmp/err.log" 2>&1
rc=$?
[ $rc -eq 1 ] && grep -q "nothing/metrics.csv" "$tmp/err.log" && ok "report of a missing folder: exit 1 naming metrics.csv" ||
    fail "report of a missing folder" "exit $rc: $(cat "$tmp/err.log")"
mkdir -p "$tmp/broken" && cp "$run"/* "$tmp/broken/" && printf 'epoch,lr,train_loss,train_acc,test_loss,test_acc,seconds\n1,0.1,2.0\n' >"$tmp/broken/metrics.csv"
"$CNNLAB" report "$tmp/broken" >"$tmp/err.log" 2>&1
rc=$?
[ $rc -eq 1 ] && grep -q "broken/metrics.csv:2:" "$tmp/err.log" && ok "report of a broken metrics.csv: exit 1 naming file:line" ||
    fail "report of a broken metrics.csv" "exit $rc: $(cat "$tmp/err.log")"
"$CNNLAB" report "$run" --bogus >"$tmp/err.log" 2>&1
[ $? -eq 2 ] && ok "report: an unknown option is a usage error" || fail "report --bogus" "$(cat "$tmp/err.log")"

# -- grey images (MNIST): the Grad-CAM overlay is colour over grey ---------------------
mrun=$tmp/runs/mnist
if "$CNNLAB" train models/mnist.net --data mnist --epochs 1 --train-subset 1000 --test-subset 300 \
    --batch 50 --out "$mrun" >"$tmp/mnist.log" 2>&1; then
    png_ok "mnist gradcam.png" "$mrun/gradcam.png" 400 400
else
    fail "mnist run with report" "$(tail -n 3 "$tmp/mnist.log")"
fi

# -- compare -----------------------------------------------------------------------------
"$CNNLAB" train models/cifar10_gn.net --epochs 2 --train-subset 1000 --test-subset 500 \
    --batch 50 --opt adam --out "$tmp/runs/gn" >"$tmp/train2.log" 2>&1 ||
    fail "second run" "$(tail -n 3 "$tmp/train2.log")"
if "$CNNLAB" compare "$run" "$tmp/runs/gn" --target 0.2 >"$tmp/compare.log" 2>&1; then
    ok "compare two runs"
else
    fail "compare two runs" "$(tail -n 3 "$tmp/compare.log")"
fi
grep -q "BatchNorm" "$tmp/compare.log" && grep -q "GroupNorm" "$tmp/compare.log" && grep -q "adam" "$tmp/compare.log" &&
    ok "compare table: normalization and optimizer of each run" || fail "compare table" "$(cat "$tmp/compare.log")"
[ "$(wc -l <"$tmp/runs/compare/compare.csv")" -eq 3 ] && ok "compare.csv: a row per run (runs/compare beside the first run)" ||
    fail "compare.csv" "missing or not 3 lines"
png_ok "compare.png" "$tmp/runs/compare/compare.png" 1000 600
png_ok "compare_per_class.png" "$tmp/runs/compare/compare_per_class.png" 900 350
[ "$(grep -o 'src="data:image/png;base64,' "$tmp/runs/compare/compare.html" | wc -l)" -eq 2 ] &&
    ok "compare.html embeds both figures" || fail "compare.html" "not 2 embedded figures"
"$CNNLAB" compare "$run" "$tmp/nothing" >"$tmp/err.log" 2>&1
[ $? -eq 1 ] && grep -q "nothing/metrics.csv" "$tmp/err.log" && ok "compare with a missing run: exit 1 naming it" ||
    fail "compare with a missing run" "$(cat "$tmp/err.log")"
"$CNNLAB" compare "$run" --target 70 >"$tmp/err.log" 2>&1
[ $? -eq 2 ] && grep -q "target" "$tmp/err.log" && ok "compare --target 70: usage error (an accuracy is a fraction)" ||
    fail "compare --target 70" "$(cat "$tmp/err.log")"

# -- headless Chromium renders the report ----------------------------------------------------
# render FILE: screenshot into FILE.png and the DOM after load into FILE.dom; a
# script prepended to a copy counts broken images and errors into the title.
render() {
    page=$1.check.html
    {
        echo '<script>window.cnnlabErrors = 0; window.addEventListener("error", function () { window.cnnlabErrors++; }, true);'
        echo 'var cnnlabConsoleError = console.error; console.error = function () { window.cnnlabErrors++; cnnlabConsoleError.apply(console, arguments); };'
        echo 'window.addEventListener("load", function () { var all = Array.prototype.slice.call(document.images);'
        echo '  var broken = all.filter(function (i) { return !i.complete || i.naturalWidth === 0; });'
        echo '  document.title = "CHECK images=" + all.length + " broken=" + broken.length + " errors=" + window.cnnlabErrors; });</script>'
        cat "$1"
    } >"$page"
    chrome="chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --enable-logging=stderr --v=0 --virtual-time-budget=5000"
    timeout 120 $chrome --dump-dom "file://$page" >"$1.dom" 2>"$1.console"
    timeout 120 $chrome --window-size=1280,2000 --screenshot="$1.png" "file://$page" >/dev/null 2>&1
}
if command -v chromium >/dev/null 2>&1; then
    render "$html"
    title=$(grep -o 'CHECK images=[0-9]* broken=[0-9]* errors=[0-9]*' "$html.dom")
    [ "$title" = "CHECK images=6 broken=0 errors=0" ] && ok "chromium: the 6 images load, no errors" ||
        fail "chromium" "got '$title'"
    msgs=$(grep 'CONSOLE' "$html.console" | head -n 3)
    [ -z "$msgs" ] && ok "chromium: nothing on the console" || fail "chromium console" "$msgs"
    png_ok "chromium screenshot" "$html.png" 1280 2000
    # the control: the checks above must catch a broken image and a script error
    printf '<html><body><h1>control</h1><img src="missing.png"><script>nosuchfunction();</script></body></html>\n' >"$tmp/control.html"
    render "$tmp/control.html"
    title=$(grep -o 'CHECK images=[0-9]* broken=[0-9]* errors=[0-9]*' "$tmp/control.html.dom")
    [ "$title" = "CHECK images=1 broken=1 errors=2" ] && grep -q CONSOLE "$tmp/control.html.console" &&
        ok "chromium control: a broken image and a script error are caught" ||
        fail "chromium control" "got '$title'"
    render "$tmp/runs/compare/compare.html"
    title=$(grep -o 'CHECK images=[0-9]* broken=[0-9]* errors=[0-9]*' "$tmp/runs/compare/compare.html.dom")
    [ "$title" = "CHECK images=2 broken=0 errors=0" ] && ok "chromium: compare.html renders" ||
        fail "chromium compare.html" "got '$title'"
else
    ok "chromium checks skipped: install Debian's chromium package (.ci/packages-test does)"
fi
finish
