#!/bin/sh
# test_lr_find.sh: `cnnlab lr-find` end to end on a small MNIST subset (skipped where
# ../shared/data is missing): the CSV's learning rates follow the exponential
# formula, the smoothed column follows torch-lr-finder's rule, the PNG is a drawn
# figure, a suggestion is printed; bad arguments are usage errors (exit 2). Also the
# initialisation options in training: train --init-whiten, and a model with sepblock
# and init=dirac, one short epoch each.
# Prints "ok - NAME" / "FAIL - NAME: ..." and "N passed, N failed".
#   BUILD=build sh tests/test_lr_find.sh
cd "$(dirname "$0")/.." || exit 2
. tests/lib.sh
make_tmp lrfind
PNGSTAT=$BUILD/tests/pngstat

# usage NAME ARGS...: lr-find exits 2 with a message on stderr.
usage() {
    name=$1
    shift
    "$CNNLAB" lr-find "$@" >"$tmp/u.out" 2>"$tmp/u.err"
    rc=$?
    [ $rc -eq 2 ] && [ -s "$tmp/u.err" ] && ok "usage error: $name" ||
        fail "usage error: $name" "exit status $rc: $(head -2 "$tmp/u.err")"
}
usage "no model" --steps 30
usage "--end-lr below --start-lr" models/mnist.net --start-lr 1 --end-lr 0.1
usage "--steps 1" models/mnist.net --steps 1
usage "--smooth 1" models/mnist.net --smooth 1
usage "--start-lr 0" models/mnist.net --start-lr 0
usage "unknown option" models/mnist.net --epochs 3

if ! have_data mnist; then
    ok "lr-find and the init options on data (skipped: no ../shared/data)"
    finish
fi

# -- lr-find on 512 images, 30 steps ------------------------------------------------
if "$CNNLAB" lr-find models/mnist.net --data mnist --train-subset 512 --batch 32 --steps 30 \
    --start-lr 1e-4 --end-lr 1 --threads 2 -o "$tmp/lr.png" >"$tmp/lr.log" 2>&1; then
    ok "lr-find runs"
else
    fail "lr-find runs" "$(tail -n 3 "$tmp/lr.log")"
fi
if [ -s "$tmp/lr.csv" ] && [ "$(head -n 1 "$tmp/lr.csv")" = "step,lr,loss,smoothed" ]; then
    # every lr is 1e-4 * (1 / 1e-4)^(i / 29); s_0 = loss_0, s_i = 0.05 loss_i + 0.95 s_(i-1)
    bad=$(awk -F, 'NR > 1 {
            want = 1e-4 * exp(log(1e4) * $1 / 29)
            if ($2 / want - 1 > 1e-6 || want / $2 - 1 > 1e-6) { print "lr at step " $1 ": " $2 " != " want; exit }
            s = NR == 2 ? $3 : 0.05 * $3 + 0.95 * prev
            if (s - $4 > 1e-5 * s || $4 - s > 1e-5 * s) { print "smoothed at step " $1 ": " $4 " != " s; exit }
            prev = $4; n++ }
        END { if (!n) print "no rows" }' "$tmp/lr.csv")
    [ -z "$bad" ] && ok "lr-find CSV: $(($(wc -l <"$tmp/lr.csv") - 1)) steps, lrs on the exponential schedule, smoothing as torch-lr-finder" ||
        fail "lr-find CSV" "$bad"
else
    fail "lr-find CSV" "no $tmp/lr.csv with the header step,lr,loss,smoothed"
fi
stat=$("$PNGSTAT" "$tmp/lr.png" 2>&1)
set -- $stat
if [ $# -eq 4 ] && [ "$3" -gt 20 ] && awk "BEGIN { exit !($4 > 0.01) }"; then
    ok "lr-find PNG: $1x$2, $3 colours, $4 ink"
else
    fail "lr-find PNG" "$stat"
fi
grep -qE "^Suggested --lr [0-9.e+-]+ \(steepest descent" "$tmp/lr.log" && ok "lr-find prints a suggested --lr" ||
    fail "lr-find suggestion" "$(tail -n 3 "$tmp/lr.log")"
# --val-split N leaves the last N training images out: with 59,990 held out, the
# sweep reads exactly the images --train-subset 10 gives
"$CNNLAB" lr-find models/mnist.net --data mnist --val-split 59990 --batch 5 --steps 6 --threads 1 \
    --csv "$tmp/vs.csv" --out "$tmp/vs.png" >"$tmp/vs.log" 2>&1
"$CNNLAB" lr-find models/mnist.net --data mnist --train-subset 10 --batch 5 --steps 6 --threads 1 \
    --csv "$tmp/ts.csv" --out "$tmp/ts.png" >"$tmp/ts.log" 2>&1
"$CNNLAB" lr-find models/mnist.net --data mnist --train-subset 20 --batch 5 --steps 6 --threads 1 \
    --csv "$tmp/t20.csv" --out "$tmp/t20.png" >"$tmp/t20.log" 2>&1
[ -s "$tmp/vs.csv" ] && cmp -s "$tmp/vs.csv" "$tmp/ts.csv" && ! cmp -s "$tmp/vs.csv" "$tmp/t20.csv" &&
    ok "lr-find --val-split 59990 sweeps the first 10 images only" ||
    fail "lr-find --val-split" "$(tail -n 2 "$tmp/vs.log")"
"$CNNLAB" lr-find models/mnist.net --data mnist --val-split 60000 --steps 6 --out "$tmp/all.png" >"$tmp/all.log" 2>&1
rc=$?
[ $rc -eq 2 ] && grep -q -- "--val-split 60000" "$tmp/all.log" && ok "lr-find --val-split of every image is a usage error" ||
    fail "lr-find --val-split 60000" "exit $rc: $(cat "$tmp/all.log")"

if [ -n "$CNNLAB_QUICK" ]; then
    ok "lr-find divergence and the init options in training (skipped: CNNLAB_QUICK)"
    finish
fi

# -- a diverging sweep stops early ----------------------------------------------------
if "$CNNLAB" lr-find models/mnist.net --data mnist --train-subset 512 --batch 32 --steps 40 \
    --start-lr 1e-3 --end-lr 1e4 --threads 2 -o "$tmp/div.png" >"$tmp/div.log" 2>&1 &&
    grep -q "^Stopped at step" "$tmp/div.log" && [ "$(wc -l <"$tmp/div.csv")" -le 41 ]; then
    ok "lr-find stops when the loss diverges ($(($(wc -l <"$tmp/div.csv") - 1)) of 40 steps)"
else
    fail "lr-find divergence" "$(tail -n 3 "$tmp/div.log")"
fi

# -- the initialisation options in training -------------------------------------------
if "$CNNLAB" train models/mnist.net --data mnist --epochs 1 --train-subset 256 --test-subset 100 \
    --batch 64 --threads 2 --init-whiten 128 --out "$tmp/whiten" >"$tmp/whiten.log" 2>&1 &&
    grep -q "^Whitening: layer 0's weights from the patches of 128 training images" "$tmp/whiten.log"; then
    ok "train --init-whiten 128 whitens layer 0 and trains"
else
    fail "train --init-whiten" "$(tail -n 3 "$tmp/whiten.log")"
fi
"$CNNLAB" train models/mnist.net --data mnist --init-whiten 10 --init "$tmp/whiten/best.safetensors" \
    --out "$tmp/both" >"$tmp/both.log" 2>&1
rc=$?
[ $rc -eq 2 ] && grep -q "init-whiten" "$tmp/both.log" && ok "--init-whiten with --init is a usage error" ||
    fail "--init-whiten with --init" "exit status $rc: $(tail -n 2 "$tmp/both.log")"
cat >"$tmp/sep.net" <<'NET'
input 1x28x28
defaults norm=bn init=dirac
block 8 k=3 pad=1
sepblock 16 k=3 pad=1 stride=2
sepblock 16 k=3 pad=1 act=silu
gap
conv 10 k=1
NET
if "$CNNLAB" train "$tmp/sep.net" --data mnist --epochs 1 --train-subset 512 --test-subset 100 \
    --batch 64 --threads 2 --out "$tmp/sep" >"$tmp/sep.log" 2>&1; then
    ok "a sepblock model with defaults init=dirac trains"
else
    fail "sepblock model" "$(tail -n 3 "$tmp/sep.log")"
fi

finish
