#!/bin/sh
# test_cli.sh: the cnnlab program as a user runs it: summary tables, the parameter
# budget and its exit codes, and the messages for bad input. Prints "ok - NAME" or
# "FAIL - NAME: ..." per check and one "N passed, N failed" line.
#   BUILD=build sh tests/test_cli.sh
cd "$(dirname "$0")/.." || exit 2
. tests/lib.sh
make_tmp cli

check "summary cifar10_bn within budget" 0 '^Within budget: 43594 trainable parameters <= 50000' -- \
    "$CNNLAB" summary models/cifar10_bn.net --max-params 50000
check "summary table columns" 0 'Layer \(type\) +Name +Output Shape +Param # +RF +Jump +MACs' -- \
    "$CNNLAB" summary models/cifar10_bn.net
check "summary totals" 0 '^Non-trainable params: 440' -- "$CNNLAB" summary models/cifar10_bn.net
check "summary receptive field" 0 'receptive field 72, jump 32' -- "$CNNLAB" summary models/cifar10_bn.net
check "summary gn" 0 '^Trainable params: 43,594' -- "$CNNLAB" summary models/cifar10_gn.net
check "summary ln" 0 'GroupNorm|LayerNorm' -- "$CNNLAB" summary models/cifar10_ln.net
check "summary mnist under 8k" 0 '^Within budget: 7782' -- "$CNNLAB" summary models/mnist.net --max-params 8,000
check "over budget exits 1" 1 '^Over budget: 43594 trainable parameters, 3594 more than the limit of 40000' -- \
    "$CNNLAB" summary models/cifar10_bn.net --max-params 40000
check "input override" 0 '^ +0 +Conv2d .*\[16, 28, 28\]' -- \
    "$CNNLAB" summary models/cifar10_bn.net --input 3x28x28
check "input override too small" 1 'shrinks below 1x1' -- \
    "$CNNLAB" summary models/cifar10_bn.net --input 3x2x2

printf 'input 3x32x32\nblock 16 k=3 pad=1\nconv 10 k=1 groups=3\n' >"$tmp/bad.net"
check "bad model names file:line:col" 1 "bad.net:3:13: groups=3 does not divide 16 input channels" -- \
    "$CNNLAB" summary "$tmp/bad.net"
check "missing model file" 1 'nope.net: cannot open the model file: No such file' -- \
    "$CNNLAB" summary "$tmp/nope.net"
head -c 4096 "$CNNLAB" >"$tmp/binary.net"
check "binary file" 1 'binary.net:1:1: unexpected byte 0x7f' -- "$CNNLAB" summary "$tmp/binary.net"
: >"$tmp/empty.net"
check "empty file" 1 'empty.net:1:1: no model here' -- "$CNNLAB" summary "$tmp/empty.net"
check "bad --max-params" 2 'expected a whole number' -- "$CNNLAB" summary models/mnist.net --max-params lots
check "bad --input" 2 'expected CxHxW' -- "$CNNLAB" summary models/mnist.net --input 28x28
check "unknown option" 2 "unknown or incomplete option '--bogus'" -- "$CNNLAB" summary models/mnist.net --bogus
check "unknown command" 2 "unknown command 'frobnicate'" -- "$CNNLAB" frobnicate
check "no command" 2 '^usage: cnnlab' -- "$CNNLAB"
check "version" 0 '^cnnlab [0-9]+\.[0-9]+\.[0-9]+$' -- "$CNNLAB" version
# bench: inference at batch 1000 runs in forwards of the training batch, so memory is
# planned for 32 images (about 1.1 GB of peak RSS when it was planned for 1000)
check "bench infers in chunks" 0 'inference batch: 1000 \(forwards of 32\)' -- \
    "$CNNLAB" bench models/cifar10_bn.net --steps 1 --batch 32 --threads 1
check "bench peak RSS under 400 MB" 0 'peak RSS ([0-9]{1,2}|[1-3][0-9]{2}) MB' -- \
    "$CNNLAB" bench models/cifar10_bn.net --steps 1 --batch 32 --threads 1
check "bench batch-1 latency" 0 '^latency: +[0-9.]+ us median per image, batch 1, 1 thread +\(p10 [0-9.]+, p90 [0-9.]+, min [0-9.]+ us; 50 runs\)' -- \
    "$CNNLAB" bench models/mnist.net --steps 1 --batch 8 --threads 2

finish
