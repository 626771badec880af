#!/usr/bin/env node
// Runs an ONNX model in ONNX Runtime (onnxruntime-node) on .npy inputs and writes .npy
// outputs: the reference our tests and benchmarks compare against.
//   node tools/ort_run.js model.onnx in.npy out.npy [--threads N] [--input-name NAME]
//     (a model with several outputs: output k > 0 goes to out_k.npy)
//   node tools/ort_run.js model.onnx in.npy --bench SECONDS [--threads N]   (prints ms)
// onnxruntime-node is looked up in $ST_PEERS_DIR/node_modules (default .peers/ in the
// source tree; tools/install-deps.sh --peers installs it there).
'use strict';
const fs = require('fs');
const path = require('path');

function loadOrt() {
  const dir = process.env.ST_PEERS_DIR || path.join(__dirname, '..', '.peers');
  try {
    return require(path.join(dir, 'node_modules', 'onnxruntime-node'));
  } catch (e) {
    console.error(`ort_run: onnxruntime-node not found in ${dir}/node_modules ` +
                  '(run tools/install-deps.sh --peers)');
    process.exit(3);
  }
}

function readNpy(file) {
  const b = fs.readFileSync(file);
  if (b.toString('latin1', 0, 6) !== '\x93NUMPY') throw new Error(`${file}: not a .npy file`);
  const major = b[6];
  const hlen = major === 1 ? b.readUInt16LE(8) : b.readUInt32LE(8);
  const hstart = major === 1 ? 10 : 12;
  const header = b.toString('latin1', hstart, hstart + hlen);
  const descr = /'descr':\s*'([^']+)'/.exec(header)[1];
  if (/'fortran_order':\s*True/.test(header)) throw new Error(`${file}: Fortran order`);
  const shape = /'shape':\s*\(([^)]*)\)/.exec(header)[1].split(',')
    .map((s) => s.trim()).filter((s) => s.length).map(Number);
  const n = shape.reduce((a, c) => a * c, 1);
  const off = hstart + hlen;
  const data = new Float32Array(n);
  if (descr === '<f4') for (let i = 0; i < n; i++) data[i] = b.readFloatLE(off + 4 * i);
  else if (descr === '<f8') for (let i = 0; i < n; i++) data[i] = b.readDoubleLE(off + 8 * i);
  else throw new Error(`${file}: dtype ${descr} (want <f4 or <f8)`);
  return { shape, data };
}

function writeNpy(file, shape, data) {
  const sh = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': ${sh}, }`;
  const total = 10 + header.length + 1;
  header += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  const h = Buffer.alloc(10);
  h.write('\x93NUMPY', 0, 'latin1');
  h[6] = 1; h[7] = 0;
  h.writeUInt16LE(header.length, 8);
  const body = Buffer.alloc(4 * data.length);
  for (let i = 0; i < data.length; i++) body.writeFloatLE(data[i], 4 * i);
  fs.writeFileSync(file, Buffer.concat([h, Buffer.from(header, 'latin1'), body]));
}

async function main() {
  const args = process.argv.slice(2);
  const opt = (name, def) => {
    const i = args.indexOf(name);
    if (i < 0) return def;
    const v = args[i + 1];
    args.splice(i, 2);
    return v;
  };
  const threads = Number(opt('--threads', '1'));
  const bench = opt('--bench', null);
  let inputName = opt('--input-name', null);
  if (args.length < 2 || (!bench && args.length < 3)) {
    console.error('usage: ort_run.js model.onnx in.npy out.npy [--threads N] | --bench SECONDS');
    process.exit(2);
  }
  const ort = loadOrt();
  const sess = await ort.InferenceSession.create(args[0], {
    intraOpNumThreads: threads, interOpNumThreads: 1, graphOptimizationLevel: 'all',
  });
  inputName = inputName || sess.inputNames[0];
  const x = readNpy(args[1]);
  const feeds = { [inputName]: new ort.Tensor('float32', x.data, x.shape) };
  if (bench) {
    for (let i = 0; i < 3; i++) await sess.run(feeds);
    const times = [];
    const until = Date.now() + 1000 * Number(bench);
    while (Date.now() < until || times.length < 5) {
      const t0 = process.hrtime.bigint();
      await sess.run(feeds);
      times.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    times.sort((a, b) => a - b);
    const mean = times.reduce((a, c) => a + c, 0) / times.length;
    console.log(JSON.stringify({ iterations: times.length, mean_ms: mean,
                                 median_ms: times[times.length >> 1] }));
    return;
  }
  const out = await sess.run(feeds);
  // the first output goes to OUT, output k > 0 to OUT with ".npy" -> "_k.npy"
  sess.outputNames.forEach((name, k) => {
    const y = out[name];
    const file = k === 0 ? args[2] : args[2].replace(/(\.npy)?$/, `_${k}.npy`);
    writeNpy(file, y.dims.map(Number), y.data);
  });
}

main().catch((e) => { console.error(`ort_run: ${e.message}`); process.exit(1); });
