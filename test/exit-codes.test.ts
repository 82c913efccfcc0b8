/**
 * Exit codes are restic's (scripts branch on them): 0 ok, 1 fatal, 2 bad
 * usage, 3 backup saved without some entries (backup-walk-safety.test.ts),
 * 4 damage found, 10 no repository, 11 locked, 12 wrong password,
 * 130 interrupted. keep and keepd alike, through the real binaries.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { initRepo, keep, KEEP_BIN, tempDirs } from './helpers.js';
import { KEEPD_BIN, keepdInit, killAllKeepd, runKeepd, start, startKeepd } from './keepd-harness.js';

const tmp = tempDirs();

describe('exit codes', () => {
  it('bad usage 2, no repository 10, wrong passphrase 12 (keep); no repository 10 (keepd)', async () => {
    const base = tmp.make('keep-exit-');
    const { env } = await initRepo(base);
    expect((await keep(['backup'], { env })).code).toBe(2);
    expect((await keep(['frobnicate'], { env })).code).toBe(2);
    const wrong = await keep(['snapshots'], { env: { ...env, KEEP_PASSWORD: 'not it' } });
    expect(wrong.code).toBe(12);
    expect(wrong.stderr).toMatch(/^keep: error: wrong passphrase/);
    const empty = path.join(base, 'empty');
    fs.mkdirSync(empty);
    const none = await keep(['snapshots'], { env: { ...env, KEEP_REPO: empty } });
    expect(none.code, none.stderr).toBe(10);
    expect(none.stderr).toMatch(/not a Keep repository/);
    const keepd = await runKeepd(['check', '--data', empty]);
    expect(keepd.code, keepd.stderr).toBe(10);
    const help = await keep(['help']);
    expect(help.stdout).toMatch(/exit codes: 0 ok, 1 fatal error, 2 bad usage, 3 backup saved/);
  });

  it('Ctrl-C ends a backup with 130 and one line', async () => {
    const base = tmp.make('keep-exit-');
    const { env } = await initRepo(base);
    // A stdin backup whose input never ends: interrupted once its session is open.
    const child = spawn(KEEP_BIN, ['backup', '--stdin', '--stdin-name', 'endless'], { env: { ...process.env, ...env, KEEP_DEBUG_TIMING: '1' }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    const closed = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    const opened = new Promise<void>((resolve) =>
      child.stderr.on('data', (b: Buffer) => {
        stderr += b.toString();
        if (stderr.includes('session open')) resolve();
      }),
    );
    child.stdin.write(Buffer.alloc(64 * 1024, 1));
    await opened;
    child.kill('SIGINT');
    const code = await closed;
    expect(code, stderr).toBe(130);
    expect(stderr).toMatch(/keep: interrupted/);
  });

  it('keepd uses the same codes where they apply: 2 bad usage, 10 no repository, 11 locked, 130 interrupted', async () => {
    const base = tmp.make('keepd-exit-');
    const data = path.join(base, 'data');
    await keepdInit(data);
    expect((await runKeepd(['prune', '--data', data, '--no-such-flag'])).code).toBe(2);
    expect((await runKeepd(['frobnicate'])).code).toBe(2);
    expect((await runKeepd(['status', '--data', path.join(base, 'none')])).code).toBe(10);
    const keepd = await startKeepd(data);
    try {
      const locked = await runKeepd(['rebuild-index', '--data', data]);
      expect(locked.code, locked.stderr).toBe(11);
      expect(locked.stderr).toMatch(/^keepd: error: keepd serve is already running on /);
    } finally {
      await keepd.stop();
      await killAllKeepd();
    }
    // A sync waiting on an upstream that accepts and never answers: Ctrl-C ends it with 130 and one line.
    let connected: () => void = () => undefined;
    const reached = new Promise<void>((resolve) => (connected = resolve));
    const silent = net.createServer(() => connected());
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    try {
      const sync = start(KEEPD_BIN, ['sync', '--data', data, '--from', `grpc://127.0.0.1:${(silent.address() as net.AddressInfo).port}`], { env: { KEEP_TOKEN: 'keep_x_y' } });
      await reached; // keepd is running its command: its interrupt handler is in place
      sync.child.kill('SIGINT');
      const r = await sync.result;
      expect(r.code, r.stderr).toBe(130);
      expect(r.stderr).toMatch(/keepd: interrupted/);
    } finally {
      silent.close();
    }
  });
});
