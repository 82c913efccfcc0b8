/**
 * README's first command: `pnpm run demo` (scripts/demo.mjs) shows the real
 * deployment with no configuration — a keepd on loopback with TLS, tokens,
 * backup and restore over gRPC as an agent, keepd stopped with exit 0, then an
 * embedded run. Run here on its small tree, in a temporary directory.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT, tempDirs } from './helpers.js';
import { start, waitFor } from './keepd-harness.js';

const DEMO = path.join(ROOT, 'scripts', 'demo.mjs');

/** Does anything accept a TCP connection on 127.0.0.1:port? */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });
}

describe('the demo', () => {
  const tmp = tempDirs();

  it('runs keepd on loopback, backs up and restores through it as an agent, stops it with exit 0, then runs embedded', async () => {
    const dir = path.join(tmp.make('keep-demo-'), 'demo');
    const r = await start(process.execPath, [DEMO, '--small', '--dir', dir], { timeoutMs: 170_000 }).result;
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
    const out = r.stdout;

    const port = Number(/listening on grpcs:\/\/localhost:(\d+) /.exec(out)?.[1]);
    expect(port).toBeGreaterThan(0);
    expect(out).toMatch(/keepd init: .*\n {3}repository [0-9a-f]{32}/);
    expect(out).toMatch(/agent token [0-9a-f]{16} .*admin token [0-9a-f]{16}/);
    expect(out).toMatch(/keep init over gRPC .*\n {3}repository [0-9a-f]{32} at grpcs:\/\/localhost:/);
    expect(out).toMatch(/keep backup over gRPC \(second\)\n {3}snapshot [0-9a-f]{8}: 1 new, 1 changed, \d+ unmodified files/);
    expect(out).toMatch(/keepd status .*\n {3}2 snapshots, /);
    expect(out).toMatch(/source demo: 2 snapshots/);
    expect(out.match(/\(grpc\): \d+ entries, byte-identical \(content, modes, mtimes, symlinks, hardlinks\)/g)).toHaveLength(2);
    expect(out).toMatch(/\(embedded\): \d+ entries, byte-identical/);
    expect(out).toMatch(/keep check --read-data over gRPC .*\n {3}ok: 2 snapshots, \d+ blobs/);
    expect(out).toContain('keepd drained its connections and exited 0');
    // Every step says how long it took.
    const steps = Number(/== done: (\d+) steps in [\d.]+ s/.exec(out)?.[1]);
    expect(steps).toBeGreaterThanOrEqual(15);
    expect(out.match(/^== \d+\. /gm)).toHaveLength(steps);
    expect(out.match(/^ {3}\(\d+\.\d\d s\)$/gm)).toHaveLength(steps);

    // keepd is gone and logged a clean stop; the tokens reached keep through files only.
    expect(await accepts(port)).toBe(false);
    const log = fs.readFileSync(path.join(dir, 'keepd.log'), 'utf8');
    expect(log.trim().split('\n').map((l) => JSON.parse(l).msg).slice(-1)).toEqual(['stopped']);
    for (const name of ['agent.token', 'admin.token']) {
      const file = path.join(dir, 'secrets', name);
      expect(fs.statSync(file).mode & 0o077).toBe(0);
      const secret = fs.readFileSync(file, 'utf8').split('_').slice(2).join('_');
      expect(secret.length).toBeGreaterThan(20);
      for (const text of [out, r.stderr, log]) expect(text).not.toContain(secret);
    }
  }, 180_000);

  it('stops its keepd when it is itself stopped (SIGTERM) mid-way, exit 130', async () => {
    const dir = path.join(tmp.make('keep-demo-term-'), 'demo');
    const child = spawn(process.execPath, [DEMO, '--small', '--dir', dir], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    try {
      await waitFor(() => /listening on grpcs:\/\/localhost:\d+ /.test(out), 120_000);
    } finally {
      child.kill('SIGTERM');
    }
    // The demo exits only after its keepd has stopped.
    expect(await exited, err).toBe(130);
    expect(err).toContain('demo interrupted (SIGTERM): its commands ended, keepd stopped (exit 0)');
    const port = Number(/listening on grpcs:\/\/localhost:(\d+) /.exec(out)?.[1]);
    expect(await accepts(port)).toBe(false);
    expect(fs.readFileSync(path.join(dir, 'keepd.log'), 'utf8')).toContain('"msg":"stopped"');
  }, 180_000);
});
