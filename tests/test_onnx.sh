#!/bin/sh
# test_onnx.sh: cnnlab export and import against ONNX Runtime (onnxruntime-node, from
# tests/package-lock.json; installed here with `npm ci --ignore-scripts` when
# tests/node_modules is missing) and Debian's ONNX checker (python3-onnx):
#   - PyTorch's exports of the shipped models and of tests/all_layers.net
#     (tests/ref/onnx/) imported, exported again at opsets 21 and 17, run in ONNX
#     Runtime: PyTorch's logits within 1e-4 (needs no dataset);
#   - with ../shared/data: each shipped model and all_layers.net trained for one
#     epoch on a subset (trained BatchNorm statistics), exported at 21 and 17, run in
#     ONNX Runtime on 100 test images: cnnlab's logits within 1e-4; --no-normalize
#     with the input normalised outside; the opset-17 export imported back gives the
#     same logits bit for bit, and trains with train --init;
#   - every opset-17 file passes onnx.checker.check_model(full_check=True);
#   - the CLI's usage errors and the error for an op cnnlab lacks.
# Missing node, npm or python3-onnx is a failure (CI installs them), except under
# CNNLAB_QUICK (the sanitized and portable passes), which skips the runtime checks.
# Prints "ok - NAME" / "FAIL - NAME: ..." and "N passed, N failed".
cd "$(dirname "$0")/.." || exit 2
. tests/lib.sh
PYTHON=${PYTHON:-/usr/bin/python3}
make_tmp onnx

# -- the command line (no runtime needed) --
check "export --help" 0 '^usage: cnnlab export CHECKPOINT' -- "$CNNLAB" export --help
check "export without a checkpoint" 2 'which checkpoint' -- "$CNNLAB" export
check "export --opset 13" 2 "--opset: expected one of 17\\|21, got '13'" -- "$CNNLAB" export x.safetensors --opset 13
check "export --format: the choices named" 2 "--format: expected one of onnx" -- "$CNNLAB" export x.safetensors --format tflite
check "export -o is --out" 1 'nope.safetensors' -- "$CNNLAB" export "$tmp/nope.safetensors" -o "$tmp/x.onnx"
check "import without a file" 2 'which ONNX file' -- "$CNNLAB" import
check "export unknown option" 2 "unknown or incomplete option '--bogus'" -- "$CNNLAB" export x --bogus
check "export a missing checkpoint" 1 'nope.safetensors' -- "$CNNLAB" export "$tmp/nope.safetensors"
check "import --help" 0 '^usage: cnnlab import MODEL.onnx' -- "$CNNLAB" import --help
check "import an op cnnlab lacks names the node and op" 1 \
    "unsupported.onnx: node '/1/Tanh' \(Tanh\): cnnlab has no layer for the ONNX op Tanh" -- \
    "$CNNLAB" import tests/ref/onnx/unsupported.onnx -o "$tmp/unsupported"
check "import a Sigmoid that is not SiLU's names the node" 1 \
    "sigmoid.onnx: node '/1/Sigmoid' \(Sigmoid\): cnnlab has no layer for the ONNX op Sigmoid" -- \
    "$CNNLAB" import tests/ref/onnx/sigmoid.onnx -o "$tmp/sigmoid"
check "import a file that is not ONNX" 1 'all_layers.net: not an ONNX model' -- \
    "$CNNLAB" import tests/all_layers.net -o "$tmp/notonnx"

# -- the tools: node with onnxruntime-node, and Debian's onnx checker --
tools=""
command -v node >/dev/null 2>&1 || tools="$tools nodejs"
command -v npm >/dev/null 2>&1 || tools="$tools npm"
"$PYTHON" -c 'import onnx' >/dev/null 2>&1 || tools="$tools python3-onnx"
if [ -z "$tools" ] && [ ! -d tests/node_modules/onnxruntime-node ] && [ -z "$CNNLAB_QUICK" ]; then
    (cd tests && npm ci --ignore-scripts --no-audit --no-fund) >"$tmp/npm.log" 2>&1 ||
        tools="$tools onnxruntime-node(npm ci failed: $(tail -n 3 "$tmp/npm.log" | tr '\n' ' '))"
fi
if [ -n "$CNNLAB_QUICK" ]; then
    ok "ONNX Runtime and checker (skipped under CNNLAB_QUICK)"
    finish
fi
if [ -n "$tools" ]; then
    fail "ONNX Runtime and checker" "missing:$tools (apt-get install nodejs npm python3-onnx; .ci/packages)"
    finish
fi

# onnx_check FILE...: Debian's checker, full check (shape inference included)
onnx_check() {
    "$PYTHON" -c '
import sys, onnx
for f in sys.argv[1:]:
    onnx.checker.check_model(onnx.load(f), full_check=True)
' "$@" >"$tmp/checker.log" 2>&1
}

# onnx_meta FILE KEY: a metadata_props value
onnx_meta() {
    "$PYTHON" -c '
import sys, onnx
print({p.key: p.value for p in onnx.load(sys.argv[1]).metadata_props}[sys.argv[2]])
' "$1" "$2"
}

# ort NAME MODEL INPUT CxHxW REF [args]: ONNX Runtime's outputs within 1e-4 of REF
# (sh has no local variables: ort_ names keep the callers' apart)
ort() {
    ort_name=$1 ort_model=$2 ort_input=$3 ort_shape=$4 ort_ref=$5
    shift 5
    if node tests/onnx_run.js "$ort_model" "$ort_input" "$ort_shape" "$tmp/ort.bin" --ref "$ort_ref" \
        --tol 1e-4 "$@" >"$tmp/ort.log" 2>&1; then
        ok "$ort_name: $(sed -n 's/.*max abs diff \([^ ]*\).*/max abs diff \1/p' "$tmp/ort.log")"
    else
        fail "$ort_name" "$(tail -n 3 "$tmp/ort.log")"
    fi
}

# -- PyTorch's exports: import, export at 21 and 17, ONNX Runtime against PyTorch's logits --
opset17=""
for model in cifar10_bn cifar10_gn cifar10_ln mnist all_layers; do
    fx=tests/ref/onnx/$model.bin
    case $model in mnist) shape=1x28x28 ;; *) shape=3x32x32 ;; esac
    c=${shape%%x*} hw=${shape#*x}
    inbytes=$((4 * 4 * c * ${hw%x*} * ${hw#*x}))
    head -c "$inbytes" "$fx" >"$tmp/$model.in"
    tail -c +$((inbytes + 1)) "$fx" >"$tmp/$model.ref"
    if ! "$CNNLAB" import "tests/ref/onnx/$model.onnx" -o "$tmp/torch_$model" >"$tmp/imp.log" 2>&1; then
        fail "import torch's $model" "$(cat "$tmp/imp.log")"
        continue
    fi
    for opset in 21 17; do
        out=$tmp/torch_$model.$opset.onnx
        if "$CNNLAB" export "$tmp/torch_$model/model.safetensors" -o "$out" --opset $opset >"$tmp/exp.log" 2>&1; then
            ort "torch's $model imported, exported at opset $opset, in ONNX Runtime = PyTorch" \
                "$out" "$tmp/$model.in" "$shape" "$tmp/$model.ref"
            [ $opset = 17 ] && opset17="$opset17 $out"
        else
            fail "export torch's $model at opset $opset" "$(cat "$tmp/exp.log")"
        fi
    done
done

# -- trained checkpoints on 100 test images, where the data is --
if ! have_data; then
    ok "trained checkpoints on test images (skipped: no ../shared/data)"
else
    for net in models/cifar10_bn.net models/cifar10_gn.net models/cifar10_ln.net models/mnist.net tests/all_layers.net; do
        model=$(basename "$net" .net)
        case $model in mnist) shape=1x28x28 data=mnist ;; *) shape=3x32x32 data=cifar10 ;; esac
        run=$tmp/run_$model
        if ! "$CNNLAB" train "$net" --data $data --epochs 1 --train-subset 512 --test-subset 100 --batch 64 \
            --threads 2 --out "$run" >"$tmp/train.log" 2>&1; then
            fail "train $model for the export" "$(tail -n 3 "$tmp/train.log")"
            continue
        fi
        ck=$run/best.safetensors
        if ! "$CNNLAB" eval "$ck" --test-subset 100 --pixels "$tmp/px.bin" --logits "$tmp/ref.bin" --out "$tmp" \
            >"$tmp/eval.log" 2>&1; then
            fail "eval $model" "$(tail -n 3 "$tmp/eval.log")"
            continue
        fi
        for opset in 21 17; do
            out=$tmp/$model.$opset.onnx
            if "$CNNLAB" export "$ck" -o "$out" --opset $opset >"$tmp/exp.log" 2>&1; then
                ort "trained $model at opset $opset in ONNX Runtime = cnnlab on 100 test images" \
                    "$out" "$tmp/px.bin" $shape "$tmp/ref.bin"
                [ $opset = 17 ] && opset17="$opset17 $out"
            else
                fail "export $model at opset $opset" "$(cat "$tmp/exp.log")"
            fi
        done
        # --no-normalize: the caller normalises, with the mean and std of the metadata
        if "$CNNLAB" export "$ck" -o "$tmp/$model.raw.onnx" --no-normalize >"$tmp/exp.log" 2>&1; then
            mean=$(onnx_meta "$tmp/$model.raw.onnx" cnnlab.mean)
            std=$(onnx_meta "$tmp/$model.raw.onnx" cnnlab.std)
            ort "trained $model --no-normalize (normalised outside) = cnnlab" "$tmp/$model.raw.onnx" \
                "$tmp/px.bin" $shape "$tmp/ref.bin" --normalize "$mean" "$std"
        else
            fail "export $model --no-normalize" "$(cat "$tmp/exp.log")"
        fi
        # import the opset-17 export back: the same logits, bit for bit
        if "$CNNLAB" import "$tmp/$model.17.onnx" -o "$tmp/back_$model" >"$tmp/imp.log" 2>&1 &&
            "$CNNLAB" eval "$tmp/back_$model/model.safetensors" --data $data --test-subset 100 \
                --logits "$tmp/back.bin" --out "$tmp" >"$tmp/eval.log" 2>&1 &&
            cmp -s "$tmp/back.bin" "$tmp/ref.bin"; then
            ok "trained $model exported at opset 17 and imported back: the same logits, bit for bit"
        else
            fail "trained $model exported and imported back" "$(tail -n 2 "$tmp/imp.log" "$tmp/eval.log")"
        fi
    done
    classes=$(onnx_meta "$tmp/cifar10_bn.21.onnx" cnnlab.classes)
    text=$(onnx_meta "$tmp/cifar10_bn.21.onnx" cnnlab.model_text)
    mean=$(onnx_meta "$tmp/cifar10_bn.21.onnx" cnnlab.mean)
    if [ "${classes%%
*}" = airplane ] && printf '%s\n' "$text" | grep -q '^block 16 k=3 pad=1' &&
        printf '%s\n' "$mean" | grep -qE '^0\.49[0-9]*,0\.48[0-9]*,0\.44[0-9]*$'; then
        ok "the export's metadata holds the class names, the model text and the normalisation"
    else
        fail "export metadata" "cnnlab.classes, cnnlab.model_text or cnnlab.mean missing or wrong"
    fi
    check "train --init from an imported PyTorch model" 0 '^Done: best test accuracy' -- \
        "$CNNLAB" train "$tmp/torch_mnist/model.net" --data mnist --init "$tmp/torch_mnist/model.safetensors" \
        --epochs 1 --train-subset 256 --test-subset 100 --out "$tmp/finetune"
fi

# -- Debian's checker (onnx 1.12: opset 17 at most) on every opset-17 file --
nchecked=$(echo $opset17 | wc -w)
if [ "$nchecked" -lt 5 ]; then
    fail "onnx checker" "only $nchecked opset-17 files were written"
elif onnx_check $opset17; then
    ok "onnx.checker.check_model(full_check=True) passes the $(echo $opset17 | wc -w) opset-17 exports"
else
    fail "onnx checker" "$(tail -n 3 "$tmp/checker.log")"
fi
finish
