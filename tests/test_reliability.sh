#!/bin/sh
# test_reliability.sh: what `cnnlab train` does when things go wrong (issue 12), one
# check per defect, on small MNIST runs (skipped where ../shared/data is missing): a
# diverged run writes no checkpoint of NaNs, a model file over 8 KB trains, one run per
# folder (a second says which process holds it and touches nothing; kill -9 frees it),
# --resume refuses a checkpoint of another run, stale temporary files are removed,
# SIGTERM and SIGHUP act like Ctrl-C, a second Ctrl-C or one during the report stops
# at once leaving the checkpoint intact, options torch.optim refuses, a failed
# checkpoint write in log.txt, checked run-state metadata. The kill test is
# test_kill.sh. Prints "ok - NAME" / "FAIL - NAME: ..." and "N passed, N failed".
cd "$(dirname "$0")/.." || exit 2
. tests/lib.sh
make_tmp rel
bg=
trap '[ -n "$bg" ] && kill -9 $bg 2>/dev/null; rm -rf "$tmp"' EXIT
# every file of a folder with its checksum, to show that nothing changed (the lock
# file aside: whoever takes the lock writes its PID there)
snapshot() { (cd "$1" && for f in *; do [ -f "$f" ] && [ "$f" != train.lock ] && echo "$f $(cksum <"$f")"; done); }
# wait (up to 60 s) until file $1 has a line matching $2
wait_for() {
    i=0
    while [ $i -lt 1200 ] && ! grep -q "$2" "$1" 2>/dev/null; do
        sleep 0.05
        i=$((i + 1))
    done
}

have_data mnist || skip_all "reliability" "no ../shared/data"
small="--data mnist --train-subset 256 --test-subset 128 --batch 32 --threads 1"

# -- 1. a diverged run: the test loss is NaN after epoch 1 (its one training step had a
#    finite loss), so no checkpoint may be written, and the run stops with exit status 1 --
"$CNNLAB" train models/mnist.net --data mnist --train-subset 32 --batch 32 --test-subset 128 \
    --threads 1 --epochs 2 --lr 1e30 --sched none --out "$tmp/nan" >"$tmp/nan.log" 2>&1
rc=$?
if [ $rc -eq 1 ] && grep -q "Test loss became NaN after epoch 1: the run diverged" "$tmp/nan.log" &&
    [ ! -e "$tmp/nan/last.safetensors" ] && [ ! -e "$tmp/nan/best.safetensors" ] &&
    [ "$(wc -l <"$tmp/nan/metrics.csv")" -eq 1 ]; then
    ok "divergence: a NaN test loss stops the run, no checkpoint of NaNs is written"
else
    fail "divergence" "exit status $rc, files: $(ls "$tmp/nan" | tr '\n' ' '): $(tail -n 2 "$tmp/nan.log")"
fi

# -- 1b. the issue's command: with relu keeping NaN (as torch.relu does) the second
#    training step's loss is already NaN; the run stops there, again without a checkpoint --
"$CNNLAB" train models/mnist.net --data mnist --train-subset 256 --test-subset 128 --threads 1 \
    --epochs 2 --lr 1e30 --sched none --out "$tmp/nan2" >"$tmp/nan2.log" 2>&1
rc=$?
if [ $rc -eq 1 ] && grep -q "the run diverged" "$tmp/nan2.log" &&
    [ ! -e "$tmp/nan2/last.safetensors" ] && [ ! -e "$tmp/nan2/best.safetensors" ]; then
    ok "divergence: a NaN training loss stops the run, no checkpoint of NaNs is written"
else
    fail "divergence (training loss)" "exit status $rc, files: $(ls "$tmp/nan2" | tr '\n' ' '): $(tail -n 2 "$tmp/nan2.log")"
fi

# -- 2. a model file over 8,191 bytes (the old metadata limit) trains and resumes --
cp models/mnist.net "$tmp/long.net"
i=0
while [ $i -lt 200 ]; do
    echo "# comment $i: a model file longer than 8191 bytes must train like a short one" >>"$tmp/long.net"
    i=$((i + 1))
done
"$CNNLAB" train "$tmp/long.net" $small --epochs 1 --out "$tmp/long" >"$tmp/long.log" 2>&1
rc=$?
if [ $rc -eq 0 ] && [ -s "$tmp/long/last.safetensors" ] && cmp -s "$tmp/long/model.net" "$tmp/long.net" &&
    "$CNNLAB" train --resume "$tmp/long" --epochs 2 >"$tmp/long2.log" 2>&1; then
    ok "a $(wc -c <"$tmp/long.net")-byte model file trains and resumes"
else
    fail "long model file" "exit status $rc: $(grep cnnlab: "$tmp/long.log" "$tmp/long2.log" | head -n 2)"
fi

# -- 3. one run per folder --
"$CNNLAB" train models/mnist.net --data mnist --train-subset 60000 --test-subset 128 --batch 32 \
    --threads 1 --epochs 5 --out "$tmp/busy" >"$tmp/busy.log" 2>&1 &
bg=$!
wait_for "$tmp/busy.log" " batch "
before=$(snapshot "$tmp/busy")
cp models/mnist.net "$tmp/second.net"
"$CNNLAB" train "$tmp/second.net" $small --epochs 1 --out "$tmp/busy" >"$tmp/second.log" 2>&1
rc=$?
if [ $rc -eq 1 ] && grep -q "$tmp/busy is in use by another training run (process $bg)" "$tmp/second.log" &&
    ! grep -q second.net "$tmp/busy/log.txt" && [ "$before" = "$(snapshot "$tmp/busy")" ]; then
    ok "a second run into a busy folder names the process, exits 1 and touches nothing"
else
    fail "busy folder" "exit status $rc: $(cat "$tmp/second.log")"
fi
"$CNNLAB" train --resume "$tmp/busy" >"$tmp/second2.log" 2>&1
rc=$?
[ $rc -eq 1 ] && grep -q "in use by another training run (process $bg)" "$tmp/second2.log" &&
    ok "--resume of a busy folder is refused too" || fail "busy resume" "exit status $rc: $(cat "$tmp/second2.log")"
kill -9 $bg
wait $bg 2>/dev/null
bg=
"$CNNLAB" train "$tmp/second.net" $small --epochs 1 --out "$tmp/busy" >"$tmp/third.log" 2>&1
rc=$?
[ $rc -eq 0 ] && grep -q "Training $tmp/second.net" "$tmp/busy/log.txt" &&
    ok "kill -9 frees the folder: a new run takes it" || fail "lock after kill -9" "exit status $rc: $(tail -n 2 "$tmp/third.log")"

# -- 5. --resume checks that the checkpoint belongs to the run --
sed 's/^defaults .*/defaults norm=bn act=relu dropout=0.1/' models/mnist.net >"$tmp/drop.net"
"$CNNLAB" train "$tmp/drop.net" --data fashion-mnist --train-subset 256 --test-subset 128 --batch 32 \
    --threads 1 --epochs 1 --lr 0.1 --out "$tmp/other" >/dev/null 2>&1
cp "$tmp/long/last.safetensors" "$tmp/other/last.safetensors"
before=$(snapshot "$tmp/other")
"$CNNLAB" train --resume "$tmp/other" --epochs 2 >"$tmp/other.log" 2>&1
rc=$?
if [ $rc -eq 1 ] && grep -q "does not belong to the run" "$tmp/other.log" &&
    grep -q "its model differs from $tmp/other/model.net at line" "$tmp/other.log" &&
    grep -q "trained on mnist, config.txt says fashion-mnist" "$tmp/other.log" &&
    grep -q "option lr is 0.05.* in it, 0.1.* in config.txt" "$tmp/other.log" &&
    [ "$before" = "$(snapshot "$tmp/other")" ]; then
    ok "--resume refuses another run's checkpoint, naming model, dataset and option, changing nothing"
else
    fail "--resume foreign checkpoint" "exit status $rc: $(cat "$tmp/other.log")"
fi
cp -r "$tmp/long" "$tmp/moved"
"$CNNLAB" train --resume "$tmp/moved" --epochs 3 >"$tmp/moved.log" 2>&1 &&
    ok "--resume of a copied run folder (its own checkpoint, another path) works" ||
    fail "--resume copied folder" "$(grep cnnlab: "$tmp/moved.log")"

# -- 6. stale temporaries: a dead writer's are removed on resume, a live one's kept --
sh -c 'exit 0' &
dead=$!
wait $dead
sleep 30 &
live=$!
: >"$tmp/long/last.safetensors.tmp.$dead"
: >"$tmp/long/best.safetensors.tmp.$live"
: >"$tmp/long/report.html.tmp"
"$CNNLAB" train --resume "$tmp/long" --epochs 3 >"$tmp/stale.log" 2>&1
rc=$?
if [ $rc -eq 0 ] && [ ! -e "$tmp/long/last.safetensors.tmp.$dead" ] && [ ! -e "$tmp/long/report.html.tmp" ] &&
    [ -e "$tmp/long/best.safetensors.tmp.$live" ] && grep -q "Removed 2 temporary files" "$tmp/stale.log"; then
    ok "stale temporary files of a killed writer are removed on resume, a live process's kept"
else
    fail "stale temporaries" "exit status $rc; left: $(ls "$tmp/long" | grep tmp | tr '\n' ' ')"
fi
kill $live 2>/dev/null

# -- 7. signals: SIGTERM and SIGHUP like Ctrl-C; a second Ctrl-C, or one during the
#    report, ends the run at once with the checkpoint intact --
for sig in TERM:15 HUP:1; do
    num=${sig#*:}
    sig=${sig%:*}
    "$CNNLAB" train models/mnist.net --data mnist --train-subset 8192 --test-subset 128 --batch 32 \
        --threads 1 --epochs 2 --out "$tmp/sig$sig" >"$tmp/sig$sig.log" 2>&1 &
    bg=$!
    wait_for "$tmp/sig$sig.log" " batch "
    kill -$sig $bg
    { wait $bg; } 2>/dev/null # no "Terminated" from the shell
    rc=$?
    bg=
    want=$((128 + num))
    if [ $rc -eq $want ] && grep -q "Interrupted by SIG$sig: saved $tmp/sig$sig/last.safetensors at epoch 1, batch" "$tmp/sig$sig.log" &&
        grep -q "Interrupted by SIG$sig" "$tmp/sig$sig/log.txt" &&
        "$CNNLAB" eval "$tmp/sig$sig/last.safetensors" --test-subset 64 --out "$tmp" >/dev/null 2>&1; then
        ok "SIG$sig: saves the partial epoch like Ctrl-C, exit status $want"
    else
        fail "SIG$sig" "exit status $rc (expected $want): $(tail -n 1 "$tmp/sig$sig.log")"
    fi
done
# two Ctrl-C: the second ends the run at once. The run resumes a finished 1-epoch run
# with batches of 1024 images, so the first signal leaves it a batch to run.
"$CNNLAB" train models/mnist.net $small --epochs 1 --out "$tmp/twice" >/dev/null 2>&1
cksum <"$tmp/twice/last.safetensors" >"$tmp/twice.sum"
"$CNNLAB" train --resume "$tmp/twice" --epochs 3 --train-subset 16384 --batch 1024 >"$tmp/twice.log" 2>&1 &
bg=$!
wait_for "$tmp/twice.log" "Epoch 2/3 batch"
kill -INT $bg
wait_for "$tmp/twice.log" "stopping at the end of this step"
kill -INT $bg
wait $bg
rc=$?
bg=
if [ $rc -eq 130 ] && grep -q "stopped at once by a second signal: $tmp/twice/last.safetensors is intact" "$tmp/twice.log" &&
    [ "$(cksum <"$tmp/twice/last.safetensors")" = "$(cat "$tmp/twice.sum")" ] &&
    "$CNNLAB" eval "$tmp/twice/last.safetensors" --test-subset 64 --out "$tmp" >/dev/null 2>&1; then
    ok "a second Ctrl-C stops at once, exit status 130, the epoch-1 checkpoint intact"
else
    fail "second Ctrl-C" "exit status $rc: $(tail -n 2 "$tmp/twice.log")"
fi
# Ctrl-C during the report (the run is complete): stops at once, non-zero
"$CNNLAB" train models/mnist.net $small --epochs 1 --out "$tmp/rep" >"$tmp/rep.log" 2>&1 &
bg=$!
wait_for "$tmp/rep.log" "^Done: "
grep -q "^Report: " "$tmp/rep.log" && reported=1 || reported=0
kill -INT $bg
wait $bg
rc=$?
bg=
if [ $rc -eq 130 ] && grep -q "stopped during the report: the run is complete" "$tmp/rep.log" &&
    "$CNNLAB" eval "$tmp/rep/last.safetensors" --test-subset 64 --out "$tmp" >/dev/null 2>&1; then
    ok "Ctrl-C during the report stops at once, exit status 130, the checkpoint intact"
elif [ $rc -eq 0 ] && [ $reported -eq 1 ]; then
    ok "Ctrl-C during the report (skipped: the report was done before the signal)"
else
    fail "Ctrl-C during the report" "exit status $rc: $(tail -n 2 "$tmp/rep.log")"
fi

# -- 10. options torch.optim refuses; --resume with another --out; a one-batch onecycle --
for opt in "--momentum -1" "--weight-decay -5" "--lr -0.1"; do
    "$CNNLAB" train models/mnist.net $small $opt --out "$tmp/neg" >"$tmp/neg.log" 2>&1
    rc=$?
    name=${opt%% *}
    [ $rc -eq 2 ] && grep -q -- "$name must be 0 or more" "$tmp/neg.log" && [ ! -e "$tmp/neg" ] &&
        ok "$opt is a usage error" || fail "$opt" "exit status $rc: $(cat "$tmp/neg.log")"
done
"$CNNLAB" train --resume "$tmp/long" --out "$tmp/elsewhere" >"$tmp/out.log" 2>&1
rc=$?
[ $rc -eq 2 ] && grep -q -- "--out $tmp/elsewhere: a resumed run continues in its own folder" "$tmp/out.log" &&
    ok "--resume DIR --out OTHER is a usage error" || fail "--resume --out" "exit status $rc: $(cat "$tmp/out.log")"
"$CNNLAB" train models/mnist.net --data mnist --train-subset 32 --test-subset 32 --batch 32 --epochs 1 \
    --out "$tmp/onebatch" >"$tmp/one.log" 2>&1
rc=$?
[ $rc -eq 1 ] && grep -q "onecycle needs at least 2 steps.*train more epochs" "$tmp/one.log" &&
    ok "a one-batch onecycle run says what to change" || fail "one-batch onecycle" "exit status $rc: $(cat "$tmp/one.log")"

# -- a failed checkpoint write reaches log.txt: last.safetensors made a folder mid-run --
n=8192
[ -n "$CNNLAB_QUICK" ] && n=2048 # the sanitized build is slower: a shorter epoch does
"$CNNLAB" train models/mnist.net --data mnist --train-subset $n --test-subset 128 --batch 32 \
    --threads 1 --epochs 1 --out "$tmp/wfail" >"$tmp/wfail.log" 2>&1 &
bg=$!
wait_for "$tmp/wfail.log" " batch "
mkdir -p "$tmp/wfail/last.safetensors/blocked"
wait $bg
rc=$?
bg=
if [ $rc -eq 1 ] && grep -q "^cnnlab: .*last.safetensors" "$tmp/wfail/log.txt"; then
    ok "a failed checkpoint write is in log.txt too: $(grep "^cnnlab: " "$tmp/wfail/log.txt" | head -n 1 | cut -c1-80)..."
else
    fail "failed write in log.txt" "exit status $rc; log.txt: $(tail -n 2 "$tmp/wfail/log.txt")"
fi

# -- the run state is parsed in full: a bad number in the metadata is an error --
off=$(grep -obUa '"cnnlab.epoch":"1"' "$tmp/rep/last.safetensors" | head -n 1 | cut -d: -f1)
if [ -n "$off" ]; then
    printf x | dd of="$tmp/rep/last.safetensors" bs=1 seek=$((off + 16)) conv=notrunc 2>/dev/null
    "$CNNLAB" train --resume "$tmp/rep" --epochs 2 >"$tmp/meta.log" 2>&1
    rc=$?
    [ $rc -eq 1 ] && grep -q "metadata cnnlab.epoch is not a valid value: 'x'" "$tmp/meta.log" &&
        ok "--resume: a run-state value that does not parse is an error naming the key" ||
        fail "checked metadata" "exit status $rc: $(cat "$tmp/meta.log")"
else
    fail "checked metadata" "no cnnlab.epoch of 1 in $tmp/rep/last.safetensors"
fi

finish
