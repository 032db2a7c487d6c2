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
#   - int8 (export --int8, QuantizeLinear/DequantizeLinear pairs) of the trained
#     cifar10_bn, mnist and all_layers at 21 and 17, run in ONNX Runtime on the 100
#     images against cnnlab's own int8 network (the compiled int8 model.c, bit for bit
#     the library's): max abs logit difference within N quantization steps of the
#     last layer (4 for cifar10_bn and mnist, 8 for all_layers), top-1 agreement at
#     least 99%, and four times closer to cnnlab's int8 logits than to its float32
#     ones (so the graph is really quantized); a wrong activation scale fails that;
#     --uint8-activations (zero point + 128) passes the same comparison;
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
check "export --uint8-activations without --int8" 2 'uint8-activations is for --int8 in ONNX' -- \
    "$CNNLAB" export x.safetensors --uint8-activations
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

# qdq_compare NAME MODEL ORT INT8 FLOAT STEPS: an int8 (QDQ) export's ONNX Runtime
# logits (ORT) against cnnlab's int8 logits (INT8) and float32 logits (FLOAT), all
# [N][K] float32. One quantization step of the last layer is the most one step of one
# of its inputs moves a logit: input_scale * max|w[k]| (from the file's own
# DequantizeLinear scales). Passes when max |ORT - INT8| <= STEPS steps, top-1
# agreement >= 99%, and the RMS distance to INT8 is at most a quarter of that to
# FLOAT (and FLOAT is at least a step away): ONNX Runtime runs cnnlab's quantized
# network, not the float one. Also checks the QDQ structure: int8 weights behind a
# per-axis DequantizeLinear, int32 biases, int8 (or uint8) activation pairs.
qdq_compare() {
    qc_name=$1
    shift
    if "$PYTHON" - "$@" >"$tmp/qdq.log" 2>&1 <<'EOF'
import sys
import numpy as np
import onnx
from onnx import numpy_helper
model, ort_bin, int8_bin, float_bin, steps = sys.argv[1:6]
g = onnx.load(model).graph
inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
producer = {o: n for n in g.node for o in n.output}
def dq_of(name):
    n = producer.get(name)
    assert n is not None and n.op_type == "DequantizeLinear", f"{name} is not dequantized"
    return n
layers = [n for n in g.node if n.op_type in ("Conv", "Gemm")]
assert layers, "no Conv or Gemm"
for n in layers:
    x, w = dq_of(n.input[0]), dq_of(n.input[1])
    assert inits[w.input[0]].dtype == np.int8 and not inits[w.input[2]].any(), f"{n.name}: weight not int8 symmetric"
    assert any(a.name == "axis" and a.i == 0 for a in w.attribute), f"{n.name}: weight not per output channel"
    assert x.input[0] not in inits and inits[x.input[2]].dtype in (np.int8, np.uint8), f"{n.name}: input not an 8-bit activation"
    if len(n.input) > 2:
        assert inits[dq_of(n.input[2]).input[0]].dtype == np.int32, f"{n.name}: bias not int32"
last = layers[-1]
x, w = dq_of(last.input[0]), dq_of(last.input[1])
q = inits[w.input[0]].astype(np.float64).reshape(inits[w.input[0]].shape[0], -1)
step = float(inits[x.input[1]]) * (np.abs(q).max(1) * inits[w.input[1]]).max()
K = q.shape[0]
ort, i8, f32 = (np.fromfile(f, np.float32).reshape(-1, K) for f in (ort_bin, int8_bin, float_bin))
d = np.abs(ort - i8).max()
agree = 100.0 * (ort.argmax(1) == i8.argmax(1)).mean()
rms_i8 = np.sqrt(((ort - i8) ** 2).mean())
rms_f = np.sqrt(((ort - f32) ** 2).mean())
closer = "%.0f times" % (rms_f / rms_i8) if rms_i8 > 0 else "infinitely"
print(f"max abs diff {d:.2e} = {d / step:.2f} steps of {step:.2e} (bound {steps}), top-1 agreement "
      f"{agree:.0f}%, {closer} closer to cnnlab's int8 logits than to float32")
ok = d <= float(steps) * step and agree >= 99 and 4 * rms_i8 <= rms_f and np.abs(ort - f32).max() >= step
sys.exit(0 if ok else 1)
EOF
    then ok "$qc_name: $(cat "$tmp/qdq.log")"
    else fail "$qc_name" "$(tail -n 3 "$tmp/qdq.log")"
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
        # int8: the QDQ export at both opsets against cnnlab's int8 network (model.c)
        case $model in cifar10_bn | mnist | all_layers) ;; *) continue ;; esac
        case $model in all_layers) steps=8 ;; *) steps=4 ;; esac
        if ! "$CNNLAB" export "$ck" --format c --int8 --calib 100 -o "$tmp/c_$model" >"$tmp/exp.log" 2>&1 ||
            ! ${CC:-cc} -std=c99 -O2 -I"$tmp/c_$model" tests/deploy/main.c "$tmp/c_$model/model.c" \
                -o "$tmp/c_$model/prog" -lm >>"$tmp/exp.log" 2>&1 ||
            ! "$tmp/c_$model/prog" "$tmp/px.bin" "$tmp/int8_$model.bin" 100 >>"$tmp/exp.log" 2>&1; then
            fail "cnnlab's int8 logits of $model" "$(tail -n 3 "$tmp/exp.log")"
            continue
        fi
        for opset in 21 17 u8; do
            out=$tmp/$model.int8.$opset.onnx flags="--opset $opset"
            [ $opset = u8 ] && flags=--uint8-activations
            # shellcheck disable=SC2086
            if "$CNNLAB" export "$ck" --int8 --calib 100 $flags -o "$out" >"$tmp/exp.log" 2>&1 &&
                node tests/onnx_run.js "$out" "$tmp/px.bin" $shape "$tmp/ort_int8.bin" >"$tmp/ort.log" 2>&1; then
                qdq_compare "trained $model int8 (QDQ) $flags in ONNX Runtime = cnnlab's int8" \
                    "$out" "$tmp/ort_int8.bin" "$tmp/int8_$model.bin" "$tmp/ref.bin" $steps
                [ $opset = 17 ] && opset17="$opset17 $out"
            else
                fail "int8 $model $flags" "$(tail -n 3 "$tmp/exp.log" "$tmp/ort.log")"
            fi
        done
        [ $model = cifar10_bn ] || continue
        # a mutation the comparison must catch: the first activation's scale 5% off
        if "$PYTHON" -c '
import sys, onnx
from onnx import numpy_helper
m = onnx.load(sys.argv[1])
for t in m.graph.initializer:
    if t.name == "t1.scale":
        t.CopyFrom(numpy_helper.from_array((numpy_helper.to_array(t) * 1.05).astype("float32"), t.name))
onnx.save(m, sys.argv[2])
' "$tmp/$model.int8.21.onnx" "$tmp/wrong_scale.onnx" >"$tmp/mutation.log" 2>&1 &&
            node tests/onnx_run.js "$tmp/wrong_scale.onnx" "$tmp/px.bin" $shape "$tmp/ort_wrong.bin" >>"$tmp/mutation.log" 2>&1; then
            saved=$passed.$failed
            qdq_compare "(the mutation)" "$tmp/wrong_scale.onnx" "$tmp/ort_wrong.bin" "$tmp/int8_$model.bin" \
                "$tmp/ref.bin" $steps >"$tmp/mutation.log"
            passed=${saved%.*} failed=${saved#*.}
            if grep -q '^FAIL - (the mutation)' "$tmp/mutation.log"; then
                ok "a wrong activation scale (t1.scale x 1.05) fails the int8 comparison: $(sed 's/^FAIL - (the mutation): //' "$tmp/mutation.log")"
            else
                fail "the int8 comparison misses a wrong scale" "$(cat "$tmp/mutation.log")"
            fi
        else
            fail "the wrong-scale mutation" "$(tail -n 3 "$tmp/mutation.log")"
        fi
        q=$(onnx_meta "$tmp/$model.int8.21.onnx" cnnlab.quantization)
        classes=$(onnx_meta "$tmp/$model.int8.21.onnx" cnnlab.classes)
        if printf '%s\n' "$q" | grep -q 'calibrated on 100 training images' && [ "${classes%%
*}" = airplane ] && [ -n "$(onnx_meta "$tmp/$model.int8.21.onnx" cnnlab.model_text)" ]; then
            ok "the int8 export's metadata: the class names, the model text and the quantization"
        else
            fail "int8 export metadata" "cnnlab.quantization, cnnlab.classes or cnnlab.model_text missing"
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
