/**
 * Exit codes are restic's (scripts branch on them): 0 ok, 1 fatal, 2 bad
 * usage, 3 backup saved without some entries (backup-walk-safety.test.ts),
 * 4 damage found, 10 no repository, 11 locked, 12 wrong password,
 * 130 interrupted. keep and keepd alike, through the real binaries.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { initRepo, keep, KEEP_BIN, tempDirs } from './helpers.js';
import { runKeepd } from './keepd-harness.js';

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
});
