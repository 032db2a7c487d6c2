#!/bin/sh
# test_deploy.sh: `cnnlab export --format c` and `cnnlab eval --int8` from the command
# line, on a checkpoint from a short MNIST run (skipped where ../shared/data is
# missing; tests/test_deploy.c checks the exported numbers without data): the float32
# and int8 exports compile with cc -std=c99 -Wall -Wextra -Werror -pedantic -O2,
# the README's ten-line program runs with each, eval --int8 reports both
# accuracies, and bad usage fails with the right exit codes. Prints "ok - NAME" /
# "FAIL - NAME: ..." and "N passed, N failed".
cd "$(dirname "$0")/.." || exit 2
. tests/lib.sh
CC=${CC:-cc}
make_tmp deploy

# -- usage errors need no data --
"$CNNLAB" export >/dev/null 2>&1
[ $? -eq 2 ] && ok "export without arguments: exit 2" || fail "export usage" "exit status not 2"
"$CNNLAB" export x.safetensors --format c >"$tmp/noout.log" 2>&1
[ $? -eq 2 ] && grep -q -- "-o DIR" "$tmp/noout.log" && ok "export --format c without -o: exit 2, asks for -o DIR" ||
    fail "export without -o" "$(cat "$tmp/noout.log")"
"$CNNLAB" export "$tmp/missing.safetensors" --format c -o "$tmp/x" >"$tmp/missing.log" 2>&1
[ $? -eq 1 ] && grep -q "missing.safetensors" "$tmp/missing.log" && ok "export of a missing checkpoint: exit 1, names the file" ||
    fail "export of a missing checkpoint" "$(cat "$tmp/missing.log")"

if ! have_data mnist; then
    ok "deploy from the command line (skipped: no ../shared/data)"
    finish
fi

if ! "$CNNLAB" train models/mnist.net --data mnist --epochs 1 --train-subset 1000 --test-subset 200 \
    --threads 1 --out "$tmp/run" >"$tmp/train.log" 2>&1; then
    fail "short mnist run" "$(tail -n 3 "$tmp/train.log")"
    echo "$passed passed, $failed failed"
    exit 1
fi
ck="$tmp/run/best.safetensors"
head -c 3136 /dev/zero >"$tmp/black.bin" # one 1x28x28 float32 image, all black

for kind in float32 int8; do
    flags=""
    [ $kind = int8 ] && flags="--int8 --calib 100"
    # shellcheck disable=SC2086
    if "$CNNLAB" export "$ck" --format c -o "$tmp/$kind" $flags >"$tmp/$kind.log" 2>&1 &&
        grep -q "^Wrote .*model.c and .*model.h: $kind" "$tmp/$kind.log" &&
        [ -s "$tmp/$kind/model.c" ] && [ -s "$tmp/$kind/model.h" ]; then
        ok "export --format c${flags:+ $flags}: $(sed 's/^Wrote [^:]*: //' "$tmp/$kind.log")"
    else
        fail "export $kind" "$(cat "$tmp/$kind.log")"
        continue
    fi
    if $CC -std=c99 -Wall -Wextra -Werror -pedantic -O2 -I"$tmp/$kind" tests/deploy/classify.c \
        "$tmp/$kind/model.c" -o "$tmp/$kind/classify" -lm >"$tmp/$kind.cc.log" 2>&1; then
        ok "$kind model.c and the README's program compile with -std=c99 -Wall -Wextra -Werror -pedantic"
    else
        fail "$kind compile" "$(head -n 5 "$tmp/$kind.cc.log")"
        continue
    fi
    out=$("$tmp/$kind/classify" <"$tmp/black.bin")
    echo "$out" | grep -Eq '^[0-9] \(logit -?[0-9]+\.[0-9]{3}\)$' && ok "$kind: the README's program prints '$out'" ||
        fail "$kind classify" "printed '$out'"
done
grep -q "int8: weights symmetric per output channel" "$tmp/int8/model.c" && grep -q "calibrated on 100 training images" "$tmp/int8/model.c" &&
    ok "int8 model.c says how it was quantized" || fail "int8 model.c header" "no quantization note"

if "$CNNLAB" eval "$ck" --int8 --calib 100 --test-subset 300 --threads 1 >"$tmp/eval.log" 2>&1 &&
    grep -Eq "^  float32: [0-9]+/300 \([0-9.]+%\)$" "$tmp/eval.log" &&
    grep -Eq "^  int8: +[0-9]+/300 \([0-9.]+%\), [-+][0-9.]+ points" "$tmp/eval.log"; then
    ok "eval --int8: $(grep int8: "$tmp/eval.log" | sed 's/^ *//')"
else
    fail "eval --int8" "$(cat "$tmp/eval.log")"
fi
"$CNNLAB" eval "$ck" --test-subset 50 >"$tmp/eval50.log" 2>&1 && grep -q "Accuracy: [0-9]*/50 " "$tmp/eval50.log" &&
    ok "eval --test-subset 50 evaluates 50 images" || fail "eval --test-subset" "$(grep Accuracy "$tmp/eval50.log")"

finish
