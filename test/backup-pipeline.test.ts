/**
 * The upload pipeline as a user sees it: seal workers start only when there
 * is data to seal, and memory does not grow with the data (a stream several
 * times larger than the agent's peak memory goes through keepd, and comes
 * back). Read from what `keep backup --json` reports (seal_workers,
 * peak_rss) and, for the restore, from /proc.
 */
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateTree, initRepo, KEEP_BIN, keepJson, MiB, parseOneJson, prng, restoredPath, tempDirs } from './helpers.js';
import { agentEnv, createToken, Keepd, keepdInit, keepJson as remoteJson, killAllKeepd, startKeepd } from './keepd-harness.js';

describe('seal workers start only for data to seal', () => {
  const tmp = tempDirs();
  let env: Record<string, string>;
  let src: string;

  beforeAll(async () => {
    const dir = tmp.make('keep-pipeline-workers-');
    ({ env } = await initRepo(dir));
    src = path.join(dir, 'src');
    // 12 MiB of data to seal: more than the pool seals on the main thread before starting a worker.
    generateTree(src, { largeFiles: [8 * MiB], compressibleSize: 4 * MiB, smallFiles: 60 });
  });

  it('a first backup of MiBs starts a worker; an unchanged one and a one-file change start none', async () => {
    const first = await keepJson(['backup', src], { env });
    expect(first.seal_workers).toBeGreaterThanOrEqual(1);
    expect(first.chunks_new).toBeGreaterThan(0);

    const unchanged = await keepJson(['backup', src], { env });
    expect(unchanged.files_unmodified).toBe(first.files_new);
    expect(unchanged.seal_workers).toBe(0);

    // A small change is sealed on the main thread: a worker would cost more than the work.
    fs.writeFileSync(path.join(src, 'changed.txt'), 'one new file\n'.repeat(1000));
    const small = await keepJson(['backup', src], { env });
    expect(small.files_new).toBe(1);
    expect(small.chunks_new).toBe(1);
    expect(small.seal_workers).toBe(0);

    // What was sealed on either thread restores.
    const target = path.join(path.dirname(src), 'restored');
    await keepJson(['restore', 'latest', '--target', target], { env });
    expect(fs.readFileSync(path.join(restoredPath(target, src), 'changed.txt'), 'utf8')).toBe('one new file\n'.repeat(1000));
    expect(fs.readFileSync(path.join(restoredPath(target, src), 'big', 'random-0.bin')).equals(fs.readFileSync(path.join(src, 'big', 'random-0.bin')))).toBe(true);
  });
});

describe('memory does not grow with the data (one large stream over gRPC)', () => {
  const tmp = tempDirs();
  let keepd: Keepd;
  let env: Record<string, string | undefined>;
  let dir: string;

  beforeAll(async () => {
    dir = tmp.make('keep-pipeline-stream-');
    const data = path.join(dir, 'data');
    await keepdInit(data);
    const agent = await createToken(data, 'agent', { sources: ['stream'] });
    keepd = await startKeepd(data);
    env = agentEnv(keepd, agent.token);
    await remoteJson(['init', '--kdf-cost', '12'], env);
  });

  afterAll(killAllKeepd);

  /** 1 MiB blocks, deterministic: random, text-like, and repeats of earlier blocks (deduplicated). */
  function block(i: number): Buffer {
    if (i % 4 === 0) return prng(70_000 + i, MiB);
    if (i % 4 === 3) return prng(70_000 + (i - 3), MiB);
    return Buffer.from(`block ${i}: ${'some compressible line of log text\n'.repeat(30_000)}`).subarray(0, MiB);
  }

  it('backs up a 320 MiB stdin stream with a peak well below its size, and restores it', async () => {
    const blocks = 320;
    const hash = crypto.createHash('sha256');
    const child = spawn(KEEP_BIN, ['backup', '--stdin', '--stdin-name', 'stream.bin', '--source', 'stream', '--json'], {
      env: Object.fromEntries(Object.entries({ ...process.env, ...env }).filter(([k, v]) => v !== undefined && (!k.startsWith('KEEP_') || k in env))) as Record<string, string>,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    for (let i = 0; i < blocks; i++) {
      const b = block(i);
      hash.update(b);
      if (!child.stdin.write(b)) await new Promise((resolve) => child.stdin.once('drain', resolve));
    }
    child.stdin.end();
    const code = await exited;
    expect(code, Buffer.concat(err).toString()).toBe(0);
    const r = parseOneJson({ code, stdout: Buffer.concat(out).toString(), stderr: '', stdoutBytes: Buffer.concat(out) });
    expect(r.bytes).toBe(blocks * MiB);
    expect(r.seal_workers).toBe(1);
    // Bounded: the agent holds a fixed budget in flight, not the stream (the whole process, runtime included).
    expect(r.peak_rss).toBeGreaterThan(0);
    expect(r.peak_rss).toBeLessThan(256 * MiB);

    // The restore is bounded too: its read-ahead is counted in bytes, and nothing received waits for a full collection.
    const target = path.join(dir, 'restored');
    const restore = spawn(KEEP_BIN, ['restore', 'latest', '--source', 'stream', '--target', target, '--json'], {
      env: Object.fromEntries(Object.entries({ ...process.env, ...env }).filter(([k, v]) => v !== undefined && (!k.startsWith('KEEP_') || k in env))) as Record<string, string>,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    const restoreErr: Buffer[] = [];
    restore.stderr.on('data', (b: Buffer) => restoreErr.push(b));
    let peak = 0;
    const poll = setInterval(() => {
      try {
        peak = Math.max(peak, Number(/VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${restore.pid}/status`, 'utf8'))?.[1] ?? 0) * 1024);
      } catch {
        /* exited */
      }
    }, 20);
    const restoreCode = await new Promise<number | null>((resolve) => restore.on('close', resolve));
    clearInterval(poll);
    expect(restoreCode, Buffer.concat(restoreErr).toString()).toBe(0);
    if (fs.existsSync('/proc/self/status')) expect(peak).toBeLessThan(256 * MiB);
    const restored = path.join(target, 'stream.bin');
    const got = crypto.createHash('sha256');
    for await (const c of fs.createReadStream(restored)) got.update(c as Buffer);
    expect(got.digest('hex')).toBe(hash.digest('hex'));
  });
});
