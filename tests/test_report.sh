#!/bin/sh
# test_report.sh: reports and comparisons end to end, from tiny real runs (CIFAR-10
# and MNIST subsets; skipped where ../shared/data is missing): every figure is a
# real PNG of the expected size with non-trivial content, report.html is
# self-contained, `cnnlab report` regenerates it, `cnnlab compare` writes its table
# and figures, both carry the analysis (synthetic metrics.csv files give each
# verdict), --tta is said and used by train, eval and report, bad input fails with
# a message, and headless Chromium renders the
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

# -- the analysis block -----------------------------------------------------------------------
for want in "<h2>Analysis</h2>" "<li>Fit: " "<li>Gap: training accuracy" "<li>Last epochs: test accuracy" \
    "<li>Target: no target given" "<li>Most confused pairs: [a-z]* ↔ [a-z]* [0-9]* ([a-z]* → [a-z]* [0-9]*, "; do
    grep -q "$want" "$html" || fail "report.html analysis" "no '$want'"
done
ok "report.html has the analysis block (fit, gap, last epochs, no target, confused pairs)"
[ "$(wc -l <"$run/analysis.txt")" -eq 6 ] && grep -q "^Fit: " "$run/analysis.txt" &&
    grep -q "^Analysis (also in analysis.txt):" "$tmp/report.log" && grep -q "^  Gap: " "$tmp/report.log" &&
    ok "analysis.txt and the report's console carry the analysis" ||
    fail "analysis.txt" "$(cat "$run/analysis.txt" "$tmp/report.log")"
grep -q "^Analysis (thresholds: docs/analysis.md):" "$tmp/compare.log" &&
    grep -Eq "^  bn: (fits well|underfits|overfits from epoch [0-9]+); gap [-+][0-9.]+ points \((widening|steady|narrowing)\); (still rising|flat|falling); 20% (at epoch [0-9]+|never reached)$" "$tmp/compare.log" &&
    grep -q "<h2>Analysis</h2>" "$tmp/runs/compare/compare.html" && grep -q "<li><b>gn</b>: " "$tmp/runs/compare/compare.html" &&
    ok "compare: an analysis line per run on the console and in compare.html" ||
    fail "compare analysis" "$(tail -n 4 "$tmp/compare.log")"

# Synthetic metrics.csv files: each verdict, its epoch, the trend of the last epochs.
# synth NAME ROWS...: a run folder holding only metrics.csv (rows: train_acc:test_acc
# per epoch; losses fall steadily).
synth() {
    d=$tmp/synth/$1
    shift
    mkdir -p "$d"
    echo "epoch,lr,train_loss,train_acc,test_loss,test_acc,seconds" >"$d/metrics.csv"
    e=0
    for row in "$@"; do
        e=$((e + 1))
        echo "$e,0.1,$(awk "BEGIN { print 2 - 0.1 * $e }"),${row%:*},$(awk "BEGIN { print 2 - 0.1 * $e }"),${row#*:},1.0" >>"$d/metrics.csv"
    done
}
synth under 0.40:0.45 0.50:0.55 0.55:0.61 0.58:0.64 0.60:0.66
synth over 0.50:0.48 0.60:0.57 0.70:0.62 0.80:0.61 0.88:0.60 0.95:0.59
synth flat 0.70:0.60 0.75:0.65 0.78:0.67 0.80:0.670 0.80:0.671 0.80:0.670
synth rise 0.50:0.45 0.60:0.52 0.68:0.57 0.73:0.62 0.78:0.67
if "$CNNLAB" compare "$tmp/synth/under" "$tmp/synth/over" "$tmp/synth/flat" "$tmp/synth/rise" --target 0.6 \
    --out "$tmp/synth/compare" >"$tmp/synth.log" 2>&1; then
    for want in "under: underfits; gap -6.00 points (steady); still rising; 60% at epoch 3" \
        "over: overfits from epoch 4; gap +36.00 points (widening); falling; 60% at epoch 3" \
        "flat: fits well; gap +13.00 points (steady); flat; 60% at epoch 1" \
        "rise: fits well; gap +11.00 points (steady); still rising; 60% at epoch 4"; do
        grep -qF "  $want" "$tmp/synth.log" || fail "synthetic verdicts" "no line '$want' in: $(grep '^  ' "$tmp/synth.log")"
    done
    ok "synthetic metrics: underfit, overfit from epoch 4, flat and rising runs get their verdicts"
else
    fail "compare of synthetic runs" "$(tail -n 3 "$tmp/synth.log")"
fi

# -- test-time augmentation: train, report and eval ------------------------------------------
trun=$tmp/runs/tta
if "$CNNLAB" train models/cifar10_bn.net --epochs 1 --train-subset 200 --test-subset 100 --batch 50 \
    --tta flip --target 0.1 --out "$trun" >"$tmp/tta.log" 2>&1; then
    grep -q "^Test-time augmentation: flip (2 views: the image and its mirror image); the prediction is the mean of the logits" "$tmp/tta.log" &&
        grep -q "^tta=flip$" "$trun/config.txt" && grep -q "^target=0.1$" "$trun/config.txt" &&
        grep -Eq "^Target 10%: (first reached at epoch 1|not reached)\.$" "$tmp/tta.log" &&
        ok "train --tta flip --target: said, and recorded in config.txt" || fail "train --tta" "$(head -n 4 "$tmp/tta.log")"
    grep -q "test-time augmentation flip" "$trun/report.html" && grep -q '<p class="tta">Test-time augmentation: flip' "$trun/report.html" &&
        grep -q "^Test-time augmentation: flip" "$trun/analysis.txt" && grep -Eq "<li>Target 10%: " "$trun/report.html" &&
        ok "the report of a TTA run says TTA was used, with its views, and names the target" ||
        fail "report of a TTA run" "no TTA note or target in report.html / analysis.txt"
    # the per-epoch test with TTA is eval's TTA evaluation of the same checkpoint, digit for digit
    "$CNNLAB" eval "$trun/last.safetensors" --test-subset 100 --show 0 --out "$tmp" >"$tmp/eval_tta.log" 2>&1
    want=$(grep "^Test set: " "$tmp/tta.log" | tail -n 1)
    grep -q "^Test-time augmentation: flip" "$tmp/eval_tta.log" && grep -qF "$want" "$tmp/eval_tta.log" &&
        ok "eval uses the run's TTA and matches the training's test line ($want)" ||
        fail "eval of a TTA run" "want '$want': $(head -n 3 "$tmp/eval_tta.log")"
    "$CNNLAB" eval "$trun/last.safetensors" --test-subset 100 --show 0 --out "$tmp" --tta none >"$tmp/eval_plain.log" 2>&1
    ! grep -q "Test-time augmentation" "$tmp/eval_plain.log" && ! grep -qF "$want" "$tmp/eval_plain.log" &&
        ok "eval --tta none: no TTA note, another loss" || fail "eval --tta none" "$(head -n 3 "$tmp/eval_plain.log")"
    "$CNNLAB" report "$trun" --tta none --show 0 >"$tmp/report_plain.log" 2>&1 &&
        ! grep -q "Test-time augmentation" "$tmp/report_plain.log" && grep -q "test-time augmentation none" "$trun/report.html" &&
        ok "report --tta none evaluates without TTA and says so" || fail "report --tta none" "$(tail -n 3 "$tmp/report_plain.log")"
else
    fail "train --tta flip" "$(tail -n 3 "$tmp/tta.log")"
fi
"$CNNLAB" eval "$run/best.safetensors" --test-subset 50 --show 0 --out "$tmp" --tta flip,translate:2 >"$tmp/eval6.log" 2>&1 &&
    grep -q "^Test-time augmentation: flip,translate:2 (6 views: the image and its shifts by (-2,-2) and (+2,+2) pixels (reflect padding), each also mirrored)" "$tmp/eval6.log" &&
    ok "eval --tta flip,translate:2: six views named" || fail "eval --tta flip,translate:2" "$(head -n 3 "$tmp/eval6.log")"
cp -r "$run" "$tmp/runs/bn_copy"
"$CNNLAB" report "$tmp/runs/bn_copy" --tta flip --target 0.2 --show 0 >"$tmp/report_tta.log" 2>&1 &&
    grep -q "^Test-time augmentation: flip (2 views" "$tmp/report_tta.log" && grep -Eq "^  Target 20%: " "$tmp/report_tta.log" &&
    ok "report --tta flip --target 0.2: the TTA note and the target on the console" ||
    fail "report --tta flip" "$(tail -n 5 "$tmp/report_tta.log")"
"$CNNLAB" eval "$run/best.safetensors" --tta mirror >"$tmp/err.log" 2>&1
[ $? -eq 2 ] && grep -q "eval --tta: test-time augmentation 'mirror': unknown view 'mirror'" "$tmp/err.log" &&
    ok "eval --tta mirror: a usage error naming the view" || fail "eval --tta mirror" "$(cat "$tmp/err.log")"
"$CNNLAB" train models/cifar10_bn.net --tta translate:0 --out "$tmp/never" >"$tmp/err.log" 2>&1
[ $? -eq 2 ] && grep -q "translate:N with N from 1 to 16" "$tmp/err.log" && [ ! -d "$tmp/never" ] &&
    ok "train --tta translate:0: a usage error before anything is written" || fail "train --tta translate:0" "$(cat "$tmp/err.log")"

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
