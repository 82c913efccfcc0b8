#!/usr/bin/env node
/**
 * Runs after `pnpm install` (the root's postinstall): makes node_modules/.bin/node
 * a symbolic link to the Node runtime the project pins (package.json's
 * optionalDependencies node-linux-<arch>, the official binary from the npm registry).
 *
 * Why: pnpm puts node_modules/.bin first on PATH for every script, so the pinned
 * runtime, not the machine's Node, runs the build, vitest and every keep/keepd the
 * tests start (their launchers `exec node`). pnpm links that bin through a shell
 * shim which starts node as a child without `exec`: a signal sent to keepd or keep
 * (SIGTERM, SIGKILL in the crash tests) would reach the shim and leave Node running.
 * A link is one process, like a system node.
 *
 * Where no package matches the platform (pnpm skips it), it says so and leaves the
 * machine's node in charge; test/node-runtime.test.ts then fails on the version.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const pkg = `node-${process.platform}-${process.arch}`;
const binary = path.join(root, 'node_modules', pkg, 'bin', 'node');
const link = path.join(root, 'node_modules', '.bin', 'node');

if (!fs.existsSync(binary)) {
  process.stderr.write(`link-node: no ${pkg} installed; scripts run on the machine's node (${process.version})\n`);
  process.exit(0);
}
fs.mkdirSync(path.dirname(link), { recursive: true });
fs.rmSync(link, { force: true });
fs.symlinkSync(path.relative(path.dirname(link), fs.realpathSync(binary)), link);
