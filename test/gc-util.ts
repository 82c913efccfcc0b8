/**
 * Helpers for the garbage-collection tests (test/gc-*.test.ts): seeded
 * randomness, clock offsets, keepd prune/forget/check as child processes,
 * restore-and-compare, and waiting for a file to appear. Everything runs the
 * real binaries; nothing here imports core, agent or server internals.
 */
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fingerprint, KEEP_BIN, restoredPath, ROOT } from './helpers.js';
import { runKeep, runKeepd } from './keepd-harness.js';

export const HOUR_MS = 3_600_000;
/** Past the 1 h GC grace and the 5 min clock slack: what a prune needs to collect "old" blobs. */
export const TWO_HOURS_MS = 2 * HOUR_MS;

/** mulberry32: a small seeded PRNG, so kill points and mutations are reproducible. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function randInt(r: () => number, lo: number, hi: number): number {
  return lo + Math.floor(r() * (hi - lo + 1));
}

/** The environment that moves a keep/keepd process's clock (`{}` for none). */
export function clockEnv(offsetMs: number): Record<string, string> {
  return offsetMs ? { KEEP_CLOCK_OFFSET_MS: String(offsetMs) } : {};
}

export function writeRandom(file: string, size: number): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, crypto.randomBytes(size));
}

// The JSON documents keepd prints are the engine's own report types.
export type { CheckReport, PruneReport } from '@keep/core';
import type { CheckReport, PruneReport } from '@keep/core';

export interface ForgetGroup {
  source: string;
  policy: string;
  snapshots: { id: string; time: string; keep: boolean; reasons: string[] }[];
  removed: string[];
}

export interface ForgetResult {
  groups: ForgetGroup[];
  skipped: string[];
}

function fail(what: string, r: { code: number | null; signal?: NodeJS.Signals | null; stdout: string; stderr: string }): never {
  throw new Error(`${what} exited ${r.code ?? r.signal}\nstderr: ${r.stderr}\nstdout: ${r.stdout.slice(0, 2000)}`);
}

/** `keepd prune --data DATA --json` with the clock moved by `offsetMs`; must succeed. */
export async function prune(data: string, offsetMs = 0, extra: string[] = []): Promise<PruneReport> {
  const r = await runKeepd(['prune', '--data', data, ...extra, '--json'], { env: clockEnv(offsetMs) });
  if (r.code !== 0) fail(`keepd prune (offset ${offsetMs} ms)`, r);
  return JSON.parse(r.stdout) as PruneReport;
}

/** `keepd forget --data DATA ARGS --json`; must succeed. */
export async function forget(data: string, args: string[], offsetMs = 0): Promise<ForgetResult> {
  const r = await runKeepd(['forget', '--data', data, ...args, '--json'], { env: clockEnv(offsetMs) });
  if (r.code !== 0) fail(`keepd forget ${args.join(' ')}`, r);
  return JSON.parse(r.stdout) as ForgetResult;
}

/** `keepd check --data DATA [--read-data] --json`: the report, and the exit code (0 ok, 4 damage). */
export async function check(data: string, readData = false): Promise<CheckReport & { exit: number | null }> {
  const r = await runKeepd(['check', '--data', data, ...(readData ? ['--read-data'] : []), '--json']);
  let report: CheckReport;
  try {
    report = JSON.parse(r.stdout) as CheckReport;
  } catch {
    fail('keepd check', r);
  }
  return { ...report, exit: r.code };
}

/** Relative path -> "size:sha256" of every file under `dir` (what a restore must reproduce). */
export function manifest(dir: string): Record<string, string> {
  return fingerprint(dir);
}

/**
 * Restore snapshot `id` (of the absolute directory `src`) into a fresh
 * directory under `scratch` and return the restored tree's manifest, or the
 * failed command's output.
 */
export async function restoreManifest(
  env: Record<string, string | undefined>,
  id: string,
  src: string,
  scratch: string,
): Promise<{ ok: true; manifest: Record<string, string> } | { ok: false; code: number | null; stderr: string }> {
  const target = fs.mkdtempSync(path.join(scratch, 'restore-'));
  try {
    const r = await runKeep(['restore', id, '--target', target, '--json'], env);
    if (r.code !== 0) return { ok: false, code: r.code, stderr: r.stderr };
    return { ok: true, manifest: manifest(restoredPath(target, src)) };
  } finally {
    fs.rmSync(target, { recursive: true, force: true });
  }
}

/**
 * Resolve with the first name created in `dir` (directly, not recursively)
 * that `match` accepts, or undefined when `until` settles first. Uses
 * inotify (fs.watch) so the caller reacts within a millisecond or so.
 */
export function whenCreated(dir: string, match: (name: string) => boolean, until: Promise<unknown>): Promise<string | undefined> {
  return new Promise((resolve) => {
    let done = false;
    const finish = (v: string | undefined) => {
      if (done) return;
      done = true;
      watcher.close();
      resolve(v);
    };
    const watcher = fs.watch(dir, (_event, name) => {
      if (name && match(String(name))) finish(String(name));
    });
    void until.then(
      () => finish(undefined),
      () => finish(undefined),
    );
  });
}

/** Poll `pred` every `everyMs` ms until it holds (true) or `until` settles (false). */
export function pollUntil(pred: () => boolean, until: Promise<unknown>, everyMs = 1): Promise<boolean> {
  return new Promise((resolve) => {
    let done = false;
    void until.then(
      () => {
        if (!done) (done = true), resolve(false);
      },
      () => {
        if (!done) (done = true), resolve(false);
      },
    );
    const tick = () => {
      if (done) return;
      if (pred()) {
        done = true;
        resolve(true);
        return;
      }
      setTimeout(tick, everyMs);
    };
    tick();
  });
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * `keep ARGS` with a writable stdin (for `keep backup --stdin`): the caller
 * writes, ends stdin when it likes, and awaits `result`.
 */
export function startKeepWithStdin(args: string[], env: Record<string, string | undefined>) {
  const full: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('KEEP_')) full[k] = v;
  for (const [k, v] of Object.entries({ KEEP_NO_PROGRESS: '1', ...env })) if (v !== undefined) full[k] = v;
  const child = spawn(KEEP_BIN, args, { env: full, cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on('data', (b: Buffer) => out.push(b));
  child.stderr.on('data', (b: Buffer) => err.push(b));
  child.stdin.on('error', () => undefined);
  const result = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>((resolve, reject) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 100_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() });
    });
  });
  return { child, result };
}

/** How many times `needle` occurs in `text`. */
export function count(text: string, needle: string): number {
  let n = 0;
  for (let i = text.indexOf(needle); i >= 0; i = text.indexOf(needle, i + needle.length)) n++;
  return n;
}

/** A keepd's state for failure messages: its port, whether (and how) it exited, its last log lines. */
export function keepdState(k: { port: number; exited(): { code: number | null; signal: NodeJS.Signals | null } | undefined; output(): string }): string {
  const tail = k.output().trim().split('\n').slice(-6).join('\n');
  return `[keepd on port ${k.port}: ${k.exited() ? `exited ${JSON.stringify(k.exited())}` : 'running'}; last log lines:\n${tail}]`;
}
