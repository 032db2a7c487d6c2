// ort_latency.mjs: batch-1 latency of an ONNX model in ONNX Runtime (npm onnxruntime-node),
// one intra-op and one inter-op thread, for bench/vs_torch. Prints one JSON line:
// {"median_us", "p10_us", "p90_us", "min_us", "runs", "version"}.
// Usage: node bench/ort_latency.mjs MODEL.onnx RUNS C H W
import { createRequire } from "module";
const require = createRequire(import.meta.url);
const ort = require("onnxruntime-node");

const [path, runsArg, c, h, w] = process.argv.slice(2);
const runs = parseInt(runsArg, 10);
const session = await ort.InferenceSession.create(path, {
    intraOpNumThreads: 1, interOpNumThreads: 1, executionMode: "sequential",
    graphOptimizationLevel: "all",
});
const dims = [1, parseInt(c, 10), parseInt(h, 10), parseInt(w, 10)];
const data = new Float32Array(dims[1] * dims[2] * dims[3]);
let s = 12345;
for (let i = 0; i < data.length; i++) {
    s = (s * 1103515245 + 12345) % 2147483648;
    data[i] = s / 1073741824 - 1;
}
const feeds = { [session.inputNames[0]]: new ort.Tensor("float32", data, dims) };
const times = [];
for (let it = 0; it < runs + 20; it++) {  // 20 warm-up runs, as cnnlab bench
    const t0 = process.hrtime.bigint();
    await session.run(feeds);
    const t = Number(process.hrtime.bigint() - t0) / 1e3;
    if (it >= 20) times.push(t);
}
times.sort((a, b) => a - b);
const pick = (q) => times[Math.floor(times.length * q)];
let version = "?";
try { version = require("onnxruntime-node/package.json").version; } catch (e) { /* unknown */ }
console.log(JSON.stringify({ median_us: pick(0.5), p10_us: pick(0.1), p90_us: pick(0.9),
                             min_us: times[0], runs, version }));
