#!/bin/sh
# test_train.sh: cnnlab train, eval and predict end to end on the real data (skipped
# where ../shared/data is missing): a CIFAR-10 smoke run that must learn (3 epochs on
# 5,000 images beat 35% test accuracy), the run folder's files, identical metrics for
# the same seed, an interrupted run resumed to exactly the uninterrupted result, a
# diverging run that stops and keeps its last good checkpoint, and eval / predict on
# the checkpoint. Prints "ok - NAME" / "FAIL - NAME: ..." and "N passed, N failed".
cd "$(dirname "$0")/.." || exit 2
. tests/lib.sh
make_tmp train
# metrics.csv without its seconds column, which differs from run to run
metrics() { cut -d, -f1-6 "$1/metrics.csv"; }

have_data || skip_all "train" "no ../shared/data"

# -- smoke: CIFAR-10 learns. With CNNLAB_QUICK (the sanitized and portable builds) one short epoch:
#    the accuracy is the plain build's check. --
if [ -n "$CNNLAB_QUICK" ]; then
    epochs=1
    "$CNNLAB" train models/cifar10_bn.net --epochs 1 --train-subset 640 --test-subset 2000 \
        --batch 32 --out "$tmp/smoke" >"$tmp/smoke.log" 2>&1 && ok "cifar10 run (quick: 640 images)" ||
        fail "cifar10 run (quick)" "$(tail -n 3 "$tmp/smoke.log")"
else
    epochs=3
    if "$CNNLAB" train models/cifar10_bn.net --data cifar10 --epochs 3 --train-subset 5000 \
        --test-subset 2000 --batch 32 --lr 0.1 --out "$tmp/smoke" >"$tmp/smoke.log" 2>&1; then
        acc=$(tail -n 1 "$tmp/smoke/metrics.csv" | cut -d, -f6)
        if awk "BEGIN { exit !($acc > 0.35) }"; then
            ok "cifar10 smoke: 3 epochs on 5000 images reach $acc test accuracy (> 0.35)"
        else
            fail "cifar10 smoke" "test accuracy $acc after 3 epochs, expected > 0.35"
        fi
    else
        fail "cifar10 smoke" "exit status $?: $(tail -n 3 "$tmp/smoke.log")"
    fi
fi
for f in config.txt model.net metrics.csv log.txt last.safetensors best.safetensors; do
    [ -s "$tmp/smoke/$f" ] || fail "run folder" "no $f"
done
[ "$(wc -l <"$tmp/smoke/metrics.csv")" -eq $((epochs + 1)) ] &&
    ok "run folder: config, model, log, $epochs metrics rows, last and best" ||
    fail "run folder" "metrics.csv has $(wc -l <"$tmp/smoke/metrics.csv") lines, expected $((epochs + 1))"
grep -q "^Test set: Average loss: [0-9.]*, Accuracy: [0-9]*/2000 ([0-9.]*%)$" "$tmp/smoke.log" &&
    ok "console: the Test set line" || fail "console" "no 'Test set: Average loss: ..., Accuracy: .../2000 (...%)' line"
ls "$tmp/smoke" | grep -q tmp && fail "atomic checkpoints" "a temporary file is left in the run folder" ||
    ok "atomic checkpoints: no temporary file left"

# -- eval and predict ---------------------------------------------------------------
if "$CNNLAB" eval "$tmp/smoke/best.safetensors" --show 3 >"$tmp/eval.log" 2>&1 &&
    grep -q "^Test set: Average loss" "$tmp/eval.log" && grep -q "Per-class accuracy" "$tmp/eval.log" &&
    [ "$(wc -l <"$tmp/smoke/eval_misclassified.csv")" -gt 1 ] && [ "$(wc -l <"$tmp/smoke/eval_confusion.csv")" -eq 11 ]; then
    ok "eval: accuracy, per-class, confusion CSV, misclassified CSV"
else
    fail "eval" "$(tail -n 3 "$tmp/eval.log")"
fi
"$CNNLAB" stats cifar10 --grid "$tmp/grid.png" --per-class 2 >/dev/null 2>&1
if "$CNNLAB" predict "$tmp/smoke/best.safetensors" "$tmp/grid.png" --top 3 >"$tmp/predict.log" 2>&1 &&
    grep -qE "grid.png: [a-z]+ 0\.[0-9]{4}, [a-z]+ 0\.[0-9]{4}, [a-z]+ 0\.[0-9]{4}$" "$tmp/predict.log"; then
    ok "predict: top-3 classes of a PNG"
else
    fail "predict" "$(cat "$tmp/predict.log")"
fi
"$CNNLAB" predict "$tmp/smoke/best.safetensors" models/mnist.net >"$tmp/predict2.log" 2>&1
[ $? -eq 1 ] && grep -q "not a PNG or JPEG" "$tmp/predict2.log" && ok "predict: a non-image is an error" ||
    fail "predict non-image" "$(cat "$tmp/predict2.log")"

# -- reproducibility and resume (MNIST: fast) ----------------------------------------
# The MNIST model with dropout in every block: the dropout masks (keyed by the step)
# must come out the same in a resumed run.
sed 's/^defaults .*/defaults norm=bn act=relu dropout=0.1/' models/mnist.net >"$tmp/mnist_dropout.net"
[ "$("$CNNLAB" summary "$tmp/mnist_dropout.net" | grep -c Dropout)" -ge 6 ] ||
    fail "resume test model" "no dropout layers in $tmp/mnist_dropout.net"
common="$tmp/mnist_dropout.net --data mnist --epochs 2 --train-subset 3000 --test-subset 1000 --batch 64 --threads 2 --aug crop:2,rotate:10"
"$CNNLAB" train $common --out "$tmp/a" >/dev/null 2>&1
"$CNNLAB" train $common --out "$tmp/b" >/dev/null 2>&1
if [ -s "$tmp/a/metrics.csv" ] && [ "$(metrics "$tmp/a")" = "$(metrics "$tmp/b")" ]; then
    ok "same seed and threads: identical metrics.csv"
else
    fail "reproducibility" "metrics differ: $(metrics "$tmp/a" | tail -n 1) vs $(metrics "$tmp/b" | tail -n 1)"
fi
"$CNNLAB" train $common --seed 2 --out "$tmp/c" >/dev/null 2>&1
[ "$(metrics "$tmp/a")" != "$(metrics "$tmp/c")" ] && ok "another seed: other metrics" ||
    fail "seed" "seed 2 gave the same metrics as seed 1"

# Interrupt a run with Ctrl-C (SIGINT) part-way, then resume it.
"$CNNLAB" train $common --out "$tmp/r" >"$tmp/r.log" 2>&1 &
pid=$!
# interrupt as soon as the first progress line shows (a fixed sleep let the short run
# finish first on a fast, idle machine); give up waiting after 60 s
i=0
while [ $i -lt 1200 ] && ! grep -q " batch " "$tmp/r.log" 2>/dev/null; do
    sleep 0.05
    i=$((i + 1))
done
kill -INT $pid 2>/dev/null
wait $pid
rc=$?
if [ $rc -eq 130 ] && grep -q "Interrupted by Ctrl-C (SIGINT): saved" "$tmp/r.log"; then
    ok "Ctrl-C: finishes the step, saves a checkpoint, exit status 130"
    "$CNNLAB" train --resume "$tmp/r" >"$tmp/r2.log" 2>&1
    if [ "$(metrics "$tmp/a")" = "$(metrics "$tmp/r")" ]; then
        ok "resume: the interrupted run ends with the uninterrupted run's metrics"
    else
        fail "resume" "$(metrics "$tmp/r" | tail -n 1) vs $(metrics "$tmp/a" | tail -n 1)"
    fi
elif [ $rc -eq 0 ]; then
    ok "Ctrl-C (skipped: the run finished before the signal)"
else
    fail "Ctrl-C" "exit status $rc: $(tail -n 2 "$tmp/r.log")"
fi

# --init: start from given weights (here the resumed run's): its first epoch starts
# where that run ended, so it beats a fresh start's first epoch on the same data
"$CNNLAB" train $common --epochs 1 --init "$tmp/a/last.safetensors" --out "$tmp/init" >"$tmp/init.log" 2>&1
fresh=$(sed -n 2p "$tmp/a/metrics.csv" | cut -d, -f6)
warm=$(sed -n 2p "$tmp/init/metrics.csv" | cut -d, -f6)
if [ -n "$warm" ] && awk "BEGIN { exit !($warm > $fresh) }"; then
    ok "--init: starts from the given weights (first epoch $warm against $fresh from scratch)"
else
    fail "--init" "first epoch ${warm:-none} against $fresh from scratch: $(tail -n 2 "$tmp/init.log")"
fi
"$CNNLAB" train models/cifar10_bn.net --epochs 1 --init "$tmp/a/last.safetensors" --out "$tmp/init2" >"$tmp/init2.log" 2>&1
[ $? -eq 1 ] && grep -q "saved from a different model" "$tmp/init2.log" && ok "--init: weights of another model are refused" ||
    fail "--init other model" "$(tail -n 2 "$tmp/init2.log")"

# -- a diverging run stops and keeps its last good checkpoint -------------------------
"$CNNLAB" train models/mnist.net --data mnist --epochs 1 --train-subset 640 --test-subset 200 \
    --batch 64 --out "$tmp/nan" >/dev/null 2>&1
cp "$tmp/nan/last.safetensors" "$tmp/nan-before"
"$CNNLAB" train --resume "$tmp/nan" --epochs 3 --lr 1e30 --sched none >"$tmp/nan.log" 2>&1
rc=$?
if [ $rc -eq 1 ] && grep -qE "Loss became (NaN|Inf) at epoch 2" "$tmp/nan.log" &&
    grep -q "last good checkpoint is .*last.safetensors (after epoch 1)" "$tmp/nan.log" &&
    cmp -s "$tmp/nan/last.safetensors" "$tmp/nan-before"; then
    ok "divergence: stops with a message naming the epoch and keeps the last good checkpoint"
else
    fail "divergence" "exit status $rc: $(tail -n 3 "$tmp/nan.log")"
fi

# -- bad input -----------------------------------------------------------------------
"$CNNLAB" train models/cifar10_bn.net --data mnist --epochs 1 >"$tmp/bad.log" 2>&1
[ $? -eq 1 ] && grep -q "takes 3x32x32 inputs but mnist images are 1x28x28" "$tmp/bad.log" &&
    ok "a model for another input shape is refused" || fail "input shape check" "$(cat "$tmp/bad.log")"
"$CNNLAB" train models/mnist.net --data nosuchset >"$tmp/bad2.log" 2>&1
[ $? -eq 1 ] && grep -q "not a dataset name" "$tmp/bad2.log" && ok "an unknown dataset is refused" ||
    fail "unknown dataset" "$(cat "$tmp/bad2.log")"
"$CNNLAB" train models/mnist.net --lr fast >"$tmp/bad3.log" 2>&1
[ $? -eq 2 ] && grep -q "expected a number" "$tmp/bad3.log" && ok "a bad option value is a usage error" ||
    fail "bad option" "$(cat "$tmp/bad3.log")"

finish
