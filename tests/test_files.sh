#!/bin/sh
# test_files.sh: bad files given to the commands (issue 12, defects 4, 8, 9, 10):
# a checkpoint holding a NaN is refused by eval, predict, report and train --init,
# naming the tensor; predict reports each bad image and predicts the others (exit 1);
# a folder given as a model, checkpoint or image says it is a folder; a model file
# starting with a UTF-8 byte order mark is read; a checkpoint whose stored std is 0
# is refused by predict as by eval; eval --out into a missing folder fails before the
# evaluation. Needs MNIST in ../shared/data (skipped otherwise) and perl (Debian's
# perl-base) to edit a checkpoint. Prints "ok - NAME" / "FAIL - NAME: ..." lines and
# "N passed, N failed".
cd "$(dirname "$0")/.." || exit 2
. tests/lib.sh
make_tmp files
# expect NAME STATUS PATTERN CMD...: CMD exits with STATUS and its output matches PATTERN
expect() {
    name=$1 want=$2 pattern=$3
    shift 3
    "$@" >"$tmp/out.log" 2>&1
    rc=$?
    if [ "$rc" -eq "$want" ] && grep -qE -- "$pattern" "$tmp/out.log"; then
        ok "$name"
    else
        fail "$name" "exit $rc (want $want), output: $(head -c 400 "$tmp/out.log")"
    fi
}

# -- folders and a byte order mark (no data needed) ------------------------------------
mkdir "$tmp/folder"
expect "summary: a folder as the model says so" 1 "folder: cannot read the model file: it is a directory" \
    "$CNNLAB" summary "$tmp/folder"
expect "train: a folder as the model says so" 1 "folder: cannot read the file: it is a directory" \
    "$CNNLAB" train "$tmp/folder" --epochs 1 --out "$tmp/never"
expect "eval: a folder as the checkpoint says so" 1 "folder: is a directory, not a safetensors file" \
    "$CNNLAB" eval "$tmp/folder"
expect "predict: a folder as the checkpoint says so" 1 "folder: is a directory, not a safetensors file" \
    "$CNNLAB" predict "$tmp/folder" x.png
{ printf '\357\273\277'; cat models/mnist.net; } >"$tmp/bom.net"
expect "summary: a UTF-8 byte order mark is skipped" 0 "Params size" "$CNNLAB" summary "$tmp/bom.net"

if ! have_data mnist; then
    ok "files with a checkpoint (skipped: no ../shared/data)"
    finish
fi

# -- a small checkpoint ---------------------------------------------------------------
run=$tmp/run
if ! "$CNNLAB" train "$tmp/bom.net" --data mnist --train-subset 256 --test-subset 128 --epochs 1 \
    --threads 1 --out "$run" >"$tmp/train.log" 2>&1; then
    fail "train a small MNIST model" "$(tail -n 3 "$tmp/train.log")"
    echo "$passed passed, $failed failed"
    exit 1
fi
ok "train: a model file with a byte order mark trains and saves"
ck=$run/best.safetensors
"$CNNLAB" stats mnist --grid "$tmp/a.png" --per-class 1 >/dev/null 2>&1
cp "$tmp/a.png" "$tmp/b.png"
printf 'not an image' >"$tmp/bad.png"

# -- predict goes on after a bad image ---------------------------------------------------
"$CNNLAB" predict "$ck" "$tmp/a.png" "$tmp/bad.png" "$tmp/folder" "$tmp/missing.png" "$tmp/b.png" \
    >"$tmp/predict.out" 2>"$tmp/predict.err"
rc=$?
if [ "$rc" -eq 1 ] && grep -q "a.png: " "$tmp/predict.out" && grep -q "b.png: " "$tmp/predict.out" &&
    grep -q "bad.png: not a PNG or JPEG" "$tmp/predict.err" &&
    grep -q "folder: is a directory" "$tmp/predict.err" &&
    grep -q "missing.png: cannot open" "$tmp/predict.err" &&
    grep -q "3 of 5 images could not be read" "$tmp/predict.err"; then
    ok "predict: each bad image is reported, the others are predicted, exit 1"
else
    fail "predict with bad images" "exit $rc; stdout: $(cat "$tmp/predict.out"); stderr: $(cat "$tmp/predict.err")"
fi
expect "predict: all images good exits 0" 0 "b.png: " "$CNNLAB" predict "$ck" "$tmp/a.png" "$tmp/b.png"

# -- eval --out into a missing folder fails at once ----------------------------------------
expect "eval --out into a missing folder fails before the evaluation" 1 \
    "eval --out $tmp/nowhere: no such folder" "$CNNLAB" eval "$ck" --out "$tmp/nowhere"
grep -q "Test set" "$tmp/out.log" && fail "eval --out" "the evaluation ran first"

# -- a stored std of 0: predict refuses it as eval does ---------------------------------------
perl -0777 -pe 's/("cnnlab\.std":")([^"]*)/$1 . ($2 =~ tr#1-9#0#r)/e' "$ck" >"$tmp/std0.safetensors"
expect "predict: a stored std of 0 is refused" 1 "channel 0 .*std 0.* is not usable" \
    "$CNNLAB" predict "$tmp/std0.safetensors" "$tmp/a.png"
expect "eval: a stored std of 0 is refused" 1 "channel 0 .*std 0.* is not usable" \
    "$CNNLAB" eval "$tmp/std0.safetensors" --out "$tmp"

# -- a NaN weight is refused everywhere, naming the tensor ------------------------------------
# best.safetensors holds weights only; its last 4 bytes are the last float of the last
# F32 tensor (the official layout orders by dtype, then by name).
size=$(wc -c <"$ck")
cp "$ck" "$tmp/nan.safetensors"
printf '\000\000\300\177' | dd of="$tmp/nan.safetensors" bs=1 seek=$((size - 4)) conv=notrunc 2>/dev/null
pattern="nan.safetensors: tensor layers\.[0-9]+\.[a-z_]+ holds NaN"
expect "eval: a NaN weight is an error naming the tensor" 1 "$pattern" "$CNNLAB" eval "$tmp/nan.safetensors"
expect "predict: a NaN weight is an error naming the tensor" 1 "$pattern" \
    "$CNNLAB" predict "$tmp/nan.safetensors" "$tmp/a.png"
expect "train --init: a NaN weight is an error naming the tensor" 1 "$pattern" \
    "$CNNLAB" train models/mnist.net --data mnist --train-subset 64 --test-subset 64 --epochs 1 \
    --init "$tmp/nan.safetensors" --out "$tmp/init"
cp "$tmp/nan.safetensors" "$run/best.safetensors"
expect "report: a NaN weight is an error naming the tensor" 1 "best.safetensors: tensor layers\.[0-9]+\.[a-z_]+ holds NaN" \
    "$CNNLAB" report "$run"

finish
