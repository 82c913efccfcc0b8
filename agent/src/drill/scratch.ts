import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { processAlive } from '@keep/core';

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
