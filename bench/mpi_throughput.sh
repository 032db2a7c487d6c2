#!/bin/sh
# mpi_throughput.sh: training throughput of `mpirun -np 2 cnnlab-mpi --threads 1`
# against `mpirun -np 1 cnnlab-mpi --threads 2` on cifar10_bn (one epoch of IMAGES
# training images, batch 128), alternating the two REPEATS times; prints each run's
# img/s (from the epoch's seconds in metrics.csv, which include a 200-image test) and
# the MPI line (gradient summing and waiting per step). Run from the repository
# root after `make mpi`:  sh bench/mpi_throughput.sh [REPEATS] [IMAGES]
REPEATS=${1:-5}
IMAGES=${2:-2560}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
tmp=$(mktemp -d "${TMPDIR:-/tmp}/cnnlab-mpibench.XXXXXX") || exit 2
trap 'rm -rf "$tmp"' EXIT
opts="--data cifar10 --epochs 1 --train-subset $IMAGES --test-subset 200 --batch 128 --aug crop:4:reflect,hflip"
for i in $(seq 1 "$REPEATS"); do
    for np in 2 1; do
        threads=$((2 / np))
        rm -rf "$tmp/run"
        mpirun --oversubscribe --allow-run-as-root -np $np build/cnnlab-mpi train models/cifar10_bn.net $opts \
            --threads $threads --out "$tmp/run" >"$tmp/log" 2>&1 || { tail -n 5 "$tmp/log"; exit 1; }
        secs=$(tail -n 1 "$tmp/run/metrics.csv" | cut -d, -f7)
        echo "run $i -np $np --threads $threads: $(awk "BEGIN { printf \"%.0f\", $IMAGES / $secs }") img/s ($secs s) $(grep '^MPI:' "$tmp/log")"
    done
done
