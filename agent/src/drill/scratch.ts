import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { processAlive, systemClock } from '@keep/core';

/** Scratch directories of drills are named so and hold MARKER: only ours are ever removed. */
const PREFIX = 'keep-drill-';
const MARKER = '.keep-drill';

/**
 * Remove the scratch directories of drills that died (killed, power lost)
 * under `parent`: a directory is removed only when its name has our prefix,
 * it holds our marker, and the pid the marker names is not running. Anything
 * else under `parent` is never touched. Returns the names removed.
 */
export function removeStaleScratch(parent: string): string[] {
  const removed: string[] = [];
  let names: string[];
  try {
    names = fs.readdirSync(parent);
  } catch {
    return removed;
  }
  for (const name of names) {
    if (!name.startsWith(PREFIX)) continue;
    const dir = path.join(parent, name);
    let pid: number;
    try {
      if (!fs.lstatSync(dir).isDirectory()) continue;
      pid = Number(JSON.parse(fs.readFileSync(path.join(dir, MARKER), 'utf8')).pid);
    } catch {
      continue; // no marker of ours: not ours to remove
    }
    if (processAlive(pid) && pid !== process.pid) continue;
    stopStalePostmaster(path.join(dir, 'restore'));
    fs.rmSync(dir, { recursive: true, force: true });
    removed.push(name);
  }
  return removed;
}

/** A fresh scratch directory under `parent` (marked with this pid); the restore goes into its `restore/`. */
export function makeScratch(parent: string): { dir: string; target: string; remove(): void } {
  fs.mkdirSync(parent, { recursive: true });
  const dir = path.join(parent, `${PREFIX}${process.pid}-${crypto.randomBytes(4).toString('hex')}`);
  fs.mkdirSync(dir, { mode: 0o700 });
  fs.writeFileSync(path.join(dir, MARKER), JSON.stringify({ pid: process.pid, started: new Date().toISOString() }) + '\n', { mode: 0o600 });
  const target = path.join(dir, 'restore');
  return { dir, target, remove: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

/**
 * A PostgreSQL drill killed with its server running leaves that server (in
 * its own process group, with its restore_command children) on the scratch
 * data: kill the group when postmaster.pid names this very data directory
 * (so the pid is ours, not a reused one) and wait for it to go, so that no
 * child writes into the directory while it is removed.
 */
function stopStalePostmaster(pgdata: string): void {
  let pid: number;
  try {
    const [first, dataDir] = fs.readFileSync(path.join(pgdata, 'postmaster.pid'), 'utf8').split('\n');
    pid = Number(first);
    if (!(pid > 1) || path.resolve(dataDir) !== path.resolve(pgdata) || !processAlive(pid)) return;
  } catch {
    return; // no server ran there
  }
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    process.kill(pid, 'SIGKILL');
  }
  const until = systemClock.now() + 10_000;
  while (processAlive(pid) && systemClock.now() < until) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50);
}
