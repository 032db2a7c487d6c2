#!/bin/sh
# test_mpi.sh: data-parallel training with build/cnnlab-mpi (built here with
# `make mpi`) under `mpirun -np 2` on this one machine: the same metrics.csv and
# the same weights, bit for bit, as one process with the ranks' threads (MNIST and a
# CIFAR-10 subset, BatchNorm and GroupNorm, dropout and augmentation on); -np 2
# against -np 1; an interrupted MPI run resumed in one process and the other way
# round, ending exactly where the uninterrupted run ends; a rank killed mid-epoch
# (the job ends within 10 s naming the rank, and its last checkpoint loads); a bad
# data path on one rank; mismatched models and binaries refused. Skipped under
# CNNLAB_QUICK (the sanitized and portable passes), without Open MPI, or without
# ../shared/data. Prints "ok - NAME" / "FAIL - NAME: ..." and "N passed, N failed".
cd "$(dirname "$0")/.." || exit 2
. tests/lib.sh
MPI_CNNLAB=$BUILD/cnnlab-mpi

skip() { skip_all "mpi" "$1"; }
[ -n "$CNNLAB_QUICK" ] && skip "CNNLAB_QUICK: the plain build's pass runs these"
command -v mpirun >/dev/null 2>&1 && command -v mpicc >/dev/null 2>&1 ||
    skip "no mpirun or mpicc (Debian: openmpi-bin libopenmpi-dev)"
have_data || skip "no ../shared/data"

make_tmp mpi
metrics() { cut -d, -f1-6 "$1/metrics.csv"; }
# The tensors of a checkpoint (names, shapes and bytes; not its metadata, which
# records --threads), as a digest.
weights() {
    python3 -c '
import hashlib, json, struct, sys
raw = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
header = json.loads(raw[8:8 + n]); header.pop("__metadata__", None)
h = hashlib.sha256()
for name in sorted(header):
    a, b = header[name]["data_offsets"]
    h.update(name.encode() + str(header[name]["shape"]).encode() + raw[8 + n + a:8 + n + b])
print(h.hexdigest())' "$1"
}
# Seconds since the epoch, with a fraction.
now() { date +%s.%N; }

if ! make -s BUILD="$BUILD" "$MPI_CNNLAB" "$CNNLAB" >"$tmp/make.log" 2>&1; then
    fail "make mpi" "$(tail -n 5 "$tmp/make.log")"
    echo "$passed passed, $failed failed"
    exit 1
fi
ok "make mpi builds $MPI_CNNLAB"

# As root Open MPI wants these; in containers the shared-memory transport needs the
# single-copy mechanism off. On Ctrl-C or SIGTERM, and when a rank dies, mpirun
# sends the ranks SIGCONT, SIGTERM odls_base_sigkill_timeout seconds later (default
# 1), and SIGKILL as long again after that: 2 s gives a loaded machine time to save.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none OMPI_MCA_odls_base_sigkill_timeout=2
MPIRUN="mpirun --oversubscribe --allow-run-as-root"

for norm in bn gn; do
    sed "s/^defaults .*/defaults norm=$norm act=relu dropout=0.1/" models/mnist.net >"$tmp/mnist_$norm.net"
done

# -- 1. the same results as one process: MNIST with dropout in every block, 1001 images
#       (a last batch of 41), and CIFAR-10 with 289 images in batches of 32 (a last
#       batch of one sample: rank 1's share is empty). --
same_as_threads() { # NAME MODEL OPTIONS...
    name=$1
    shift
    "$CNNLAB" train "$@" --threads 2 --out "$tmp/$name-t2" >"$tmp/$name-t2.log" 2>&1 ||
        { fail "$name: one process, 2 threads" "$(tail -n 3 "$tmp/$name-t2.log")"; return; }
    $MPIRUN -np 2 "$MPI_CNNLAB" train "$@" --threads 1 --out "$tmp/$name-np2" >"$tmp/$name-np2.log" 2>&1 ||
        { fail "$name: mpirun -np 2" "$(tail -n 5 "$tmp/$name-np2.log")"; return; }
    if [ "$(metrics "$tmp/$name-t2")" = "$(metrics "$tmp/$name-np2")" ] &&
        [ "$(weights "$tmp/$name-t2/last.safetensors")" = "$(weights "$tmp/$name-np2/last.safetensors")" ]; then
        ok "$name: mpirun -np 2 --threads 1 gives the metrics.csv and weights of --threads 2, bit for bit"
    else
        fail "$name: -np 2 differs from --threads 2" "$(metrics "$tmp/$name-t2" | tail -n 1) vs $(metrics "$tmp/$name-np2" | tail -n 1)"
    fi
}
mnist="--data mnist --epochs 2 --train-subset 1001 --test-subset 301 --batch 64 --aug crop:2,rotate:10"
same_as_threads mnist-bn "$tmp/mnist_bn.net" $mnist
same_as_threads mnist-gn "$tmp/mnist_gn.net" $mnist
cifar="--data cifar10 --epochs 1 --train-subset 289 --test-subset 101 --batch 32 --aug crop:4:reflect,hflip"
same_as_threads cifar-bn models/cifar10_bn.net $cifar
same_as_threads cifar-gn models/cifar10_gn.net $cifar

$MPIRUN -np 1 "$MPI_CNNLAB" train "$tmp/mnist_bn.net" $mnist --threads 2 --out "$tmp/np1" >"$tmp/np1.log" 2>&1 &&
    [ "$(metrics "$tmp/np1")" = "$(metrics "$tmp/mnist-bn-np2")" ] &&
    [ "$(weights "$tmp/np1/last.safetensors")" = "$(weights "$tmp/mnist-bn-np2/last.safetensors")" ] &&
    ok "mpirun -np 1 --threads 2 and -np 2 --threads 1 agree bit for bit" ||
    fail "-np 1 against -np 2" "$(tail -n 3 "$tmp/np1.log")"

# one writer: rank 0's lines once, the run folder complete
[ "$(grep -c '^Test set' "$tmp/mnist-bn-np2.log")" -eq 2 ] && [ -f "$tmp/mnist-bn-np2/report.html" ] &&
    grep -q "MPI: 2 ranks" "$tmp/mnist-bn-np2/log.txt" &&
    ok "rank 0 alone prints and writes the run folder (log, metrics, checkpoints, report)" ||
    fail "one writer" "$(grep -c '^Test set' "$tmp/mnist-bn-np2.log") 'Test set' lines; $(ls "$tmp/mnist-bn-np2" | tr '\n' ' ')"

# -- 2. resume across MPI and one process: interrupt, resume with the other kind, end
#       exactly where the uninterrupted run (mnist-long-t2) ends. --
# Start a run in the background, send SIGTERM once epoch 1 shows progress (mpirun
# passes it on 2 s later, still within epoch 1 or 2), and wait for it.
interrupt_run() { # LOG COMMAND...
    log=$1
    shift
    "$@" >"$log" 2>&1 &
    pid=$!
    i=0
    while [ $i -lt 600 ] && ! grep -q "Epoch 1/2 [lb]" "$log" 2>/dev/null && kill -0 $pid 2>/dev/null; do
        sleep 0.1
        i=$((i + 1))
    done
    kill -TERM $pid 2>/dev/null
    wait $pid
}
# These runs are longer (313 steps an epoch, about 3 s on the idle machine) than the ones
# above, so that the signal, which mpirun passes on 1 to 2 s late, still finds them
# running: with 126 steps an epoch, the faster kernels of 2026-12-01 finished both
# epochs first and the signal came during the report.
mnist_long="--data mnist --epochs 2 --train-subset 20001 --test-subset 301 --batch 64 --aug crop:2,rotate:10"
"$CNNLAB" train "$tmp/mnist_bn.net" $mnist_long --threads 2 --out "$tmp/mnist-long-t2" >"$tmp/long.log" 2>&1 ||
    fail "the uninterrupted long run" "$(tail -n 3 "$tmp/long.log")"
interrupt_run "$tmp/r1.log" $MPIRUN -np 2 "$MPI_CNNLAB" train "$tmp/mnist_bn.net" $mnist_long --threads 1 --out "$tmp/r1"
if [ "$(grep -c '^Interrupted by [A-Z]*: saved' "$tmp/r1/log.txt" 2>/dev/null)" = 1 ]; then
    ok "SIGTERM to mpirun: every rank stops and rank 0 saves the checkpoint once"
    "$CNNLAB" train --resume "$tmp/r1" --threads 2 >"$tmp/r1b.log" 2>&1 &&
        [ "$(metrics "$tmp/r1")" = "$(metrics "$tmp/mnist-long-t2")" ] &&
        [ "$(weights "$tmp/r1/last.safetensors")" = "$(weights "$tmp/mnist-long-t2/last.safetensors")" ] &&
        ok "an interrupted mpirun -np 2 run resumed in one process ends as the uninterrupted run" ||
        fail "MPI -> one process resume" "$(tail -n 3 "$tmp/r1b.log"; metrics "$tmp/r1" | tail -n 1)"
else
    fail "interrupting mpirun" "$(grep -c '^Interrupted by [A-Z]*: saved' "$tmp/r1/log.txt" 2>/dev/null) 'Interrupted by ...: saved' lines; $(tail -c 300 "$tmp/r1.log")"
fi
interrupt_run "$tmp/r2.log" "$CNNLAB" train "$tmp/mnist_bn.net" $mnist_long --threads 2 --out "$tmp/r2"
if [ -f "$tmp/r2/last.safetensors" ]; then
    $MPIRUN -np 2 "$MPI_CNNLAB" train --resume "$tmp/r2" --threads 1 >"$tmp/r2b.log" 2>&1 &&
        [ "$(metrics "$tmp/r2")" = "$(metrics "$tmp/mnist-long-t2")" ] &&
        [ "$(weights "$tmp/r2/last.safetensors")" = "$(weights "$tmp/mnist-long-t2/last.safetensors")" ] &&
        ok "an interrupted one-process run resumed under mpirun -np 2 ends as the uninterrupted run" ||
        fail "one process -> MPI resume" "$(tail -n 5 "$tmp/r2b.log")"
else
    fail "interrupting one process" "no checkpoint: $(tail -n 3 "$tmp/r2.log")"
fi

# -- 3. faults --
# A rank killed mid-epoch: the job ends within 10 s, with a message naming the rank,
# and the checkpoint of the last finished epoch loads.
$MPIRUN -np 2 "$MPI_CNNLAB" train "$tmp/mnist_bn.net" $mnist --threads 1 --out "$tmp/k" >"$tmp/k.log" 2>&1 &
job=$!
i=0
while [ $i -lt 600 ] && ! grep -q "Epoch 2/2 [lb]" "$tmp/k.log" 2>/dev/null && kill -0 $job 2>/dev/null; do
    sleep 0.1
    i=$((i + 1))
done
victim=$(pgrep -P $job -f cnnlab-mpi | tail -n 1)
t0=$(now)
[ -n "$victim" ] && kill -KILL "$victim"
# a watchdog, so that a hang fails the test instead of blocking it
( sleep 30; kill -KILL $job 2>/dev/null ) &
dog=$!
wait $job
t1=$(now)
kill $dog 2>/dev/null
secs=$(awk "BEGIN { printf \"%.1f\", $t1 - $t0 }")
if [ -n "$victim" ] && awk "BEGIN { exit !($secs < 10) }" && grep -q "process rank 1 .*exited on signal 9" "$tmp/k.log"; then
    ok "a rank killed mid-epoch ends the job in ${secs} s, named by mpirun"
else
    fail "killed rank" "victim '$victim', ${secs} s: $(tail -c 400 "$tmp/k.log")"
fi
mkdir -p "$tmp/k-eval"
"$CNNLAB" eval "$tmp/k/last.safetensors" --out "$tmp/k-eval" >"$tmp/k-eval.log" 2>&1 &&
    grep -q "Accuracy" "$tmp/k-eval.log" && ok "the killed job's last checkpoint loads (cnnlab eval)" ||
    fail "the killed job's checkpoint" "$(tail -n 3 "$tmp/k-eval.log")"

# A bad data path on rank 1 (mpirun's MPMD form gives it other arguments).
mkdir -p "$tmp/empty"
small="--epochs 1 --train-subset 200 --test-subset 100 --batch 64 --threads 1"
t0=$(now)
$MPIRUN -np 1 "$MPI_CNNLAB" train "$tmp/mnist_bn.net" --data mnist $small --out "$tmp/bad" : \
    -np 1 "$MPI_CNNLAB" train "$tmp/mnist_bn.net" --data "$tmp/empty" $small --out "$tmp/bad" >"$tmp/bad.log" 2>&1
rc=$?
secs=$(awk "BEGIN { printf \"%.1f\", $(now) - $t0 }")
[ $rc -ne 0 ] && grep -q "cnnlab (rank 1): $tmp/empty has no class subfolders" "$tmp/bad.log" &&
    grep -q "rank 1 failed (its message is above): every rank stops" "$tmp/bad.log" &&
    [ ! -f "$tmp/bad/last.safetensors" ] &&
    ok "a bad data path on rank 1 stops every rank with rank 1's message (${secs} s)" ||
    fail "bad data on one rank" "rc $rc: $(cat "$tmp/bad.log" | head -n 5)"

# Another model on rank 1, then another binary on rank 1.
$MPIRUN -np 1 "$MPI_CNNLAB" train "$tmp/mnist_bn.net" --data mnist $small --out "$tmp/mm" : \
    -np 1 "$MPI_CNNLAB" train "$tmp/mnist_gn.net" --data mnist $small --out "$tmp/mm" >"$tmp/mm.log" 2>&1
rc=$?
[ $rc -ne 0 ] && grep -q "rank 1 and rank 0 differ in their model file and options" "$tmp/mm.log" &&
    [ ! -f "$tmp/mm/last.safetensors" ] && ok "a different model file on rank 1 is refused at start" ||
    fail "mismatched model" "rc $rc: $(head -n 3 "$tmp/mm.log")"
cp "$MPI_CNNLAB" "$tmp/other-cnnlab-mpi" && printf 'x' >>"$tmp/other-cnnlab-mpi"
$MPIRUN -np 1 "$MPI_CNNLAB" train "$tmp/mnist_bn.net" --data mnist $small --out "$tmp/mb" : \
    -np 1 "$tmp/other-cnnlab-mpi" train "$tmp/mnist_bn.net" --data mnist $small --out "$tmp/mb" >"$tmp/mb.log" 2>&1
rc=$?
[ $rc -ne 0 ] && grep -q "rank 1 and rank 0 differ in their program" "$tmp/mb.log" &&
    [ ! -f "$tmp/mb/last.safetensors" ] && ok "a different cnnlab-mpi binary on rank 1 is refused at start" ||
    fail "mismatched binary" "rc $rc: $(head -n 3 "$tmp/mb.log")"

finish
