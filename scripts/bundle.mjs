#!/usr/bin/env node
// Bundles each command (keep, keepd) and the seal worker into one ES module
// per entry after tsc has built dist/. Node resolves and compiles ~300 small
// modules (grpc-js, protobuf-es, ours) at every start, which cost ~90 ms of
// CPU per command here; one file costs a fraction of that (docs/ARCHITECTURE.md,
// "Start-up"). Native and wasm packages stay external: they load their
// binaries relative to their own files.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const external = ['pino', 'lmdb', 'msgpackr', 'zstd-napi', '@napi-rs/blake-hash', 'fastcdc-wasm'];
// grpc-js is CommonJS: inside an ES module bundle its require() calls need a real require.
const banner = { js: "import { createRequire as __keepRequire } from 'node:module'; const require = __keepRequire(import.meta.url);" };

const targets = [
  { entry: 'agent/dist/cli/main.js', out: 'agent/dist/keep.mjs' },
  { entry: 'server/dist/cli/main.js', out: 'server/dist/keepd.mjs' },
  // the seal pool starts its worker from the file next to the module that holds it: the bundle
  { entry: 'packages/core/dist/parallel/seal-worker.js', out: 'agent/dist/seal-worker.js' },
  { entry: 'packages/core/dist/parallel/seal-worker.js', out: 'server/dist/seal-worker.js' },
];

for (const t of targets) {
  await build({
    entryPoints: [path.join(root, t.entry)],
    outfile: path.join(root, t.out),
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    external,
    banner,
    sourcemap: 'linked',
    logLevel: 'warning',
  });
}
for (const t of targets) if (!fs.existsSync(path.join(root, t.out))) throw new Error(`bundle ${t.out} was not written`);
