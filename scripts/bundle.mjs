#!/usr/bin/env node
// Bundles each command (keep, keepd) and the seal worker into one file per
// entry after tsc has built dist/. Node resolves and compiles ~300 small
// modules (grpc-js, protobuf-es, ours) at every start, which cost ~90 ms of
// CPU per command here; one file costs a fraction of that (docs/ARCHITECTURE.md,
// "Start-up"). Native and wasm packages stay external: they load their
// binaries relative to their own files.
//
// The agent's bundle is CommonJS (agent/dist/keep.cjs): bin/keep.js compiles it
// with vm.Script and a V8 code cache (agent/src/startup/code-cache.ts), which
// Node 20 offers for scripts only, not for ES modules.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { esmBanner, external, nodeTarget } from './bundle-options.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/**
 * The agent loads lmdb (native, ~10 ms with its helpers) only for an embedded
 * repository: the bundle gets a stand-in whose functions require the package on
 * first call. esbuild fails the build if the agent imports anything else from it.
 */
const lazyLmdb = {
  name: 'lazy-lmdb',
  setup(b) {
    // the stand-in's own require('lmdb') is the real package, left for run time
    b.onResolve({ filter: /^lmdb$/ }, (args) => (args.namespace === 'keep-lazy' ? { path: 'lmdb', external: true } : { path: 'lmdb', namespace: 'keep-lazy' }));
    b.onLoad({ filter: /.*/, namespace: 'keep-lazy' }, () => ({
      contents: "export function open(...args) { return require('lmdb').open(...args); }",
      loader: 'js',
    }));
  },
};

/**
 * keepd's dashboard serves the chart library's browser files (uPlot) itself:
 * the bundle carries their text in place of server/src/web/vendor-assets.ts,
 * which reads them from node_modules when unbundled.
 */
const webAssets = {
  name: 'web-assets',
  setup(b) {
    b.onLoad({ filter: /[\\/]web[\\/]vendor-assets\.js$/ }, () => {
      const dist = path.join(root, 'server/node_modules/uplot/dist');
      const js = fs.readFileSync(path.join(dist, 'uPlot.iife.min.js'), 'utf8');
      const css = fs.readFileSync(path.join(dist, 'uPlot.min.css'), 'utf8');
      return { contents: `export function chartLibrary() { return { js: ${JSON.stringify(js)}, css: ${JSON.stringify(css)} }; }`, loader: 'js' };
    });
  },
};

const targets = [
  {
    entry: 'agent/dist/cli/main.js',
    out: 'agent/dist/keep.cjs',
    format: 'cjs',
    plugins: [lazyLmdb],
    // the bundle's own URL, where the modules inside it look for their workers
    define: { 'import.meta.url': '__keepBundleUrl' },
    banner: { js: "var __keepBundleUrl = require('node:url').pathToFileURL(__filename).href;" },
  },
  // what bin/keep.js loads first (scrypt's head start, the loader above): one file, only Node's modules
  { entry: 'agent/dist/startup/launch.js', out: 'agent/dist/launch.mjs', external: [], banner: { js: '' } },
  { entry: 'server/dist/cli/main.js', out: 'server/dist/keepd.mjs', plugins: [webAssets] },
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
    format: t.format ?? 'esm',
    target: nodeTarget,
    external: t.external ?? external,
    plugins: t.plugins ?? [],
    define: t.define ?? {},
    banner: t.banner ?? esmBanner,
    sourcemap: 'linked',
    logLevel: 'warning',
  });
}
for (const t of targets) if (!fs.existsSync(path.join(root, t.out))) throw new Error(`bundle ${t.out} was not written`);
// vm.Script runs the agent's bundle without a dynamic import() hook: an import() left in it would fail at run time.
const agent = fs.readFileSync(path.join(root, 'agent/dist/keep.cjs'), 'utf8');
if (/[^\w$.]import\s*\(/.test(agent)) throw new Error('agent/dist/keep.cjs holds a dynamic import(), which its loader (vm.Script) cannot serve');
// an ES module bundle from an earlier build would never be run again
fs.rmSync(path.join(root, 'agent/dist/keep.mjs'), { force: true });
fs.rmSync(path.join(root, 'agent/dist/keep.mjs.map'), { force: true });
