// onnx_run.js: runs an ONNX file in ONNX Runtime (onnxruntime-node, CPU) on raw
// float32 NCHW images and writes the raw float32 outputs; with --ref, compares them
// with reference outputs (cnnlab's logits) and fails above --tol.
//   node tests/onnx_run.js MODEL.onnx INPUT.bin CxHxW OUT.bin [--ref REF.bin] [--tol 1e-4]
//        [--normalize m0,m1,m2 s0,s1,s2]   (normalise the input first, for --no-normalize exports)
//        [--bench N]   (also time N single-image runs, one thread: the median latency)
const fs = require('fs');
const path = require('path');
const ort = require(path.join(__dirname, 'node_modules', 'onnxruntime-node'));

async function main() {
    const args = process.argv.slice(2);
    const opt = {};
    const pos = [];
    for (let i = 0; i < args.length; i++) {
        if (args[i] === '--ref') opt.ref = args[++i];
        else if (args[i] === '--tol') opt.tol = parseFloat(args[++i]);
        else if (args[i] === '--bench') opt.bench = parseInt(args[++i], 10);
        else if (args[i] === '--normalize') { opt.mean = args[++i].split(',').map(Number); opt.std = args[++i].split(',').map(Number); }
        else pos.push(args[i]);
    }
    if (pos.length !== 4) {
        console.error('usage: node onnx_run.js MODEL.onnx INPUT.bin CxHxW OUT.bin [--ref REF.bin] [--tol T] [--normalize MEAN STD]');
        process.exit(2);
    }
    const [model, input, shape, out] = pos;
    const [C, H, W] = shape.split('x').map(Number);
    const buf = fs.readFileSync(input);
    const x = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
    const N = x.length / (C * H * W);
    if (!Number.isInteger(N) || N < 1) throw new Error(`${input}: ${x.length} floats is not a whole number of ${shape} images`);
    if (opt.mean) {
        for (let i = 0; i < x.length; i++) {
            const c = Math.floor(i / (H * W)) % C;
            x[i] = (x[i] - opt.mean[c]) / opt.std[c];
        }
    }
    const session = await ort.InferenceSession.create(model, { executionProviders: ['cpu'], intraOpNumThreads: 1 });
    const feeds = {};
    feeds[session.inputNames[0]] = new ort.Tensor('float32', x, [N, C, H, W]);
    const result = await session.run(feeds);
    const y = result[session.outputNames[0]].data;
    fs.writeFileSync(out, Buffer.from(y.buffer, y.byteOffset, y.byteLength));
    if (opt.bench > 0) {
        const one = {};
        one[session.inputNames[0]] = new ort.Tensor('float32', x.slice(0, C * H * W), [1, C, H, W]);
        for (let i = 0; i < 20; i++) await session.run(one); // warm-up
        const ms = [];
        for (let i = 0; i < opt.bench; i++) {
            const t0 = process.hrtime.bigint();
            await session.run(one);
            ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
        }
        ms.sort((a, b) => a - b);
        console.log(`${path.basename(model)}: batch 1, one thread: median ${ms[ms.length >> 1].toFixed(3)} ms, ` +
                    `min ${ms[0].toFixed(3)} ms over ${opt.bench} runs`);
    }
    if (opt.ref) {
        const rb = fs.readFileSync(opt.ref);
        const r = new Float32Array(rb.buffer.slice(rb.byteOffset, rb.byteOffset + rb.byteLength));
        if (r.length !== y.length) {
            console.log(`${model}: ${y.length} outputs, the reference has ${r.length}`);
            process.exit(1);
        }
        let maxdiff = 0;
        for (let i = 0; i < y.length; i++) {
            const d = Math.abs(y[i] - r[i]);
            if (!(d <= maxdiff)) maxdiff = d; // NaN counts as a difference
        }
        const tol = opt.tol !== undefined ? opt.tol : 1e-4;
        console.log(`${path.basename(model)}: ${N} images, max abs diff ${maxdiff.toExponential(2)} (tolerance ${tol})`);
        if (!(maxdiff <= tol)) process.exit(1);
    }
}

main().catch((e) => { console.error(`onnx_run.js: ${e.message || e}`); process.exit(1); });
