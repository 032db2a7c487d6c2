#!/bin/sh
# test_val_ema.sh: train --val-split, --ema and the parameter groups end to end on
# MNIST subsets (skipped where ../shared/data is missing): the validation images are
# the last N of the training split and disjoint from the --train-subset images;
# metrics.csv gains val_loss,val_acc and has a test accuracy only after the last epoch; the best epoch is the best validation accuracy; the `last`
# checkpoint holds the averaged weights (eval of it gives the test figure train
# printed) and the raw ones; a run interrupted after 2 of 3 epochs and resumed ends
# with the tensors of the uninterrupted run (not under CNNLAB_QUICK); eval --split val
# gives the last validation figure and --weights raw the figures of the run without
# --ema; --resume with another --val-split or
# without --ema is refused naming it; report reads the new metrics.csv.
# Prints "ok - NAME" / "FAIL - NAME: ..." and "N passed, N failed" (tests/lib.sh).
cd "$(dirname "$0")/.." || exit 2
. tests/lib.sh
make_tmp val
cfg() { sed -n "s/^$2=//p" "$1/config.txt"; }
# the tensor bytes of a safetensors file (after its header, whose metadata holds the options)
tensors() { n=$(od -An -tu8 -N8 "$1" | tr -d ' '); tail -c +$((n + 9)) "$1"; }

have_data mnist || skip_all "val/ema" "no ../shared/data"

common="models/mnist.net --data mnist --train-subset 640 --test-subset 200 --batch 64 --threads 2 --sched step --lr 0.5 --val-split 300 --ema 0.9 --no-decay-norm-bias --norm-lr-scale 2"

# -- the split: the last 300 of MNIST's 60,000 training images, the first 640 trained on --
# shellcheck disable=SC2086
"$CNNLAB" train $common --epochs 3 --out "$tmp/a" >"$tmp/a.log" 2>&1 || fail "train --val-split --ema" "exit $?: $(tail -3 "$tmp/a.log")"
t=$(cfg "$tmp/a" train_range) v=$(cfg "$tmp/a" val_range)
t1=${t#*-} v0=${v%-*} v1=${v#*-}
[ "$t" = "0-639" ] && [ "$v" = "59700-59999" ] && [ "$(cfg "$tmp/a" val_images)" = 300 ] &&
    [ "$(cfg "$tmp/a" train_images)" = 640 ] && [ "$t1" -lt "$v0" ] && [ $((v1 - v0 + 1)) = 300 ] &&
    ok "validation images 59700-59999, training images 0-639: disjoint" ||
    fail "split" "train_range=$t val_range=$v train_images=$(cfg "$tmp/a" train_images)"
# the images the validation loader reads: their labels counted per class, against the
# last 300 labels of the training split's label file
want=$(gzip -dc ../shared/data/mnist/train-labels-idx1-ubyte.gz | tail -c 300 | od -An -tu1 -v |
    tr -s ' ' '\n' | grep . | sort -n | uniq -c | awk '{ c[$2] = $1 } END { for (k = 0; k < 10; k++) printf "%s%d", k ? "," : "", c[k] }')
[ "$(cfg "$tmp/a" val_class_counts)" = "$want" ] && ok "the validation images are the last 300 (class counts $want)" ||
    fail "val_class_counts" "$(cfg "$tmp/a" val_class_counts), want $want"
"$CNNLAB" train models/mnist.net --data mnist --val-split 60000 --epochs 1 --out "$tmp/all" >"$tmp/all.log" 2>&1
rc=$?
[ $rc -ne 0 ] && grep -q -- "--val-split 60000" "$tmp/all.log" && ok "--val-split of every training image is refused" ||
    fail "--val-split 60000" "exit $rc: $(tail -2 "$tmp/all.log")"

# -- metrics.csv: val columns each epoch, the test set after the last epoch only --
head -1 "$tmp/a/metrics.csv" | grep -qx "epoch,lr,train_loss,train_acc,test_loss,test_acc,seconds,val_loss,val_acc" &&
    [ "$(wc -l <"$tmp/a/metrics.csv")" -eq 4 ] &&
    [ "$(awk -F, 'NR > 1 && NR < 4 && $6 == "nan"' "$tmp/a/metrics.csv" | wc -l)" -eq 2 ] &&
    awk -F, 'NR == 4 && $6 != "nan" && $6 >= 0 && $9 >= 0 { f = 1 } END { exit !f }' "$tmp/a/metrics.csv" &&
    ok "metrics.csv: val_loss,val_acc; test only after the last epoch" || fail "metrics.csv" "$(cat "$tmp/a/metrics.csv")"
grep -q "^Validation set (averaged weights): " "$tmp/a.log" && grep -q "^Test set (averaged weights), after the last epoch: " "$tmp/a.log" &&
    [ "$(grep -c "^Test set" "$tmp/a.log")" -eq 1 ] && ok "the log names validation and test figures" ||
    fail "log" "$(grep -E "^(Validation|Test)" "$tmp/a.log")"
# the best epoch: the first highest val_acc (with --lr 0.5, epoch 2 of 3 here: a choice
# on the last epoch or on test accuracy would give 3)
want=$(awk -F, 'NR > 1 && (b == "" || $9 > b) { b = $9; e = $1 } END { print e }' "$tmp/a/metrics.csv")
grep -q "^Done: best validation accuracy [0-9.]*% at epoch $want " "$tmp/a.log" &&
    ok "the best checkpoint is chosen on validation accuracy (epoch $want)" || fail "best" "want epoch $want: $(grep ^Done "$tmp/a.log")"
grep -q "validation</b> accuracy" "$tmp/a/report.html" && grep -q "<th>val. acc.</th>" "$tmp/a/report.html" &&
    ok "report: validation and test figures named" || fail "report" "no validation figures in report.html"

# -- --ema: last holds the averaged weights (eval gives the test figure train printed) --
mkdir -p "$tmp/ev"
"$CNNLAB" eval "$tmp/a/last.safetensors" --test-subset 200 --threads 2 --out "$tmp/ev" >"$tmp/ev.log" 2>&1
want=$(sed -n 's/^Test set (averaged weights), after the last epoch: \(.*\)$/\1/p' "$tmp/a.log")
got=$(sed -n 's/^Test set: \(.*\)$/\1/p' "$tmp/ev.log")
[ -n "$want" ] && [ "$want" = "$got" ] && ok "eval of last gives train's averaged test figure ($got)" ||
    fail "eval of last" "train: '$want', eval: '$got'"
grep -aq '"optimizer.ema_other"' "$tmp/a/last.safetensors" && ! grep -aq '"optimizer.' "$tmp/a/best.safetensors" &&
    ok "last keeps the raw weights (optimizer.ema_other); best holds weights only" || fail "ema state" "optimizer.ema_other missing"

# -- eval --split val and --weights raw: a run's choices measured on its validation images --
"$CNNLAB" eval "$tmp/a/last.safetensors" --split val --threads 2 --out "$tmp/ev" >"$tmp/ev_val.log" 2>&1
want=$(sed -n 's/^Validation set (averaged weights): \(.*\)$/\1/p' "$tmp/a.log" | tail -1)
got=$(sed -n 's/^Validation set: \(.*\)$/\1/p' "$tmp/ev_val.log")
[ -n "$want" ] && [ "$want" = "$got" ] && grep -q "validation images 59700-59999 of the training split" "$tmp/ev_val.log" &&
    ok "eval --split val gives train's last validation figure ($got)" || fail "eval --split val" "train: '$want', eval: '$got'"
mis=$(sed -n 2p "$tmp/ev/eval_misclassified.csv" | cut -d, -f1)
[ -n "$mis" ] && [ "$mis" -ge 59700 ] && [ "$mis" -le 59999 ] &&
    ok "eval --split val names mistakes by their training-split index ($mis)" || fail "val index" "$(head -2 "$tmp/ev/eval_misclassified.csv")"
# the weights under the average are those of the same run without --ema, bit for bit
# shellcheck disable=SC2086
"$CNNLAB" train $(echo $common | sed 's/--ema 0.9//') --epochs 3 --out "$tmp/n" >"$tmp/n.log" 2>&1 || fail "train without --ema" "$(tail -2 "$tmp/n.log")"
for split in test val; do
    "$CNNLAB" eval "$tmp/a/last.safetensors" --weights raw --split $split --test-subset 200 --threads 2 --out "$tmp/ev" >"$tmp/raw.log" 2>&1
    "$CNNLAB" eval "$tmp/n/last.safetensors" --split $split --test-subset 200 --threads 2 --out "$tmp/ev" >"$tmp/plain.log" 2>&1
    "$CNNLAB" eval "$tmp/a/last.safetensors" --split $split --test-subset 200 --threads 2 --out "$tmp/ev" >"$tmp/avg.log" 2>&1
    raw=$(grep "set: Average loss" "$tmp/raw.log") plain=$(grep "set: Average loss" "$tmp/plain.log")
    avg=$(grep "set: Average loss" "$tmp/avg.log")
    [ -n "$raw" ] && [ "$raw" = "$plain" ] && [ "$raw" != "$avg" ] &&
        ok "eval --weights raw --split $split: the run without --ema's figure ($raw), not the average's" ||
        fail "--weights raw $split" "raw '$raw', without --ema '$plain', average '$avg' $(tail -1 "$tmp/raw.log")"
done
"$CNNLAB" eval "$tmp/a/best.safetensors" --weights raw >"$tmp/rb.log" 2>&1
rc=$?
[ $rc -eq 1 ] && grep -q "moving average only" "$tmp/rb.log" && ok "eval --weights raw of best says only last keeps them" ||
    fail "--weights raw of best" "exit $rc: $(cat "$tmp/rb.log")"
"$CNNLAB" eval "$tmp/n/last.safetensors" --weights raw >"$tmp/rn.log" 2>&1
rc=$?
[ $rc -eq 1 ] && grep -q "without --ema" "$tmp/rn.log" && ok "eval --weights raw of a run without --ema is refused" ||
    fail "--weights raw without ema" "exit $rc: $(cat "$tmp/rn.log")"

# -- resume: 2 epochs, then a third, as 3 at once (not under CNNLAB_QUICK) --
if [ -z "$CNNLAB_QUICK" ]; then
    # shellcheck disable=SC2086
    "$CNNLAB" train $common --epochs 2 --out "$tmp/b" >"$tmp/b.log" 2>&1 &&
        "$CNNLAB" train --resume "$tmp/b" --epochs 3 >>"$tmp/b.log" 2>&1
    tensors "$tmp/a/last.safetensors" >"$tmp/a.t"
    tensors "$tmp/b/last.safetensors" >"$tmp/b.t"
    cmp -s "$tmp/a.t" "$tmp/b.t" && [ -s "$tmp/a.t" ] && ok "resumed with --ema and --val-split: the tensors of the uninterrupted run" ||
        fail "resume" "tensors differ: $(tail -2 "$tmp/b.log")"
fi

# -- a resume that would change the split or drop the average --
"$CNNLAB" train --resume "$tmp/a" --epochs 4 --val-split 200 >"$tmp/c.log" 2>&1
rc=$?
[ $rc -ne 0 ] && grep -q -- "--val-split 200: .* holds out 300 validation images" "$tmp/c.log" &&
    ok "--resume with another --val-split is refused naming it" || fail "--resume --val-split 200" "exit $rc: $(cat "$tmp/c.log")"
"$CNNLAB" train --resume "$tmp/a" --epochs 4 --ema 0 >"$tmp/d.log" 2>&1
rc=$?
[ $rc -ne 0 ] && grep -q -- "--ema 0: .* averages the weights" "$tmp/d.log" &&
    ok "--resume with --ema 0 is refused naming it" || fail "--resume --ema 0" "exit $rc: $(cat "$tmp/d.log")"

# -- option values --
"$CNNLAB" train models/mnist.net --data mnist --ema 1 --epochs 1 --out "$tmp/e1" >"$tmp/e1.log" 2>&1
rc=$?
[ $rc -ne 0 ] && grep -q -- "--ema" "$tmp/e1.log" && ok "--ema 1 is refused" || fail "--ema 1" "exit $rc: $(cat "$tmp/e1.log")"
"$CNNLAB" train models/mnist.net --data mnist --norm-lr-scale 0 --epochs 1 --out "$tmp/s0" >"$tmp/s0.log" 2>&1
rc=$?
[ $rc -eq 2 ] && grep -q -- "--norm-lr-scale" "$tmp/s0.log" && ok "--norm-lr-scale 0 is a usage error" || fail "--norm-lr-scale 0" "exit $rc: $(cat "$tmp/s0.log")"

finish
