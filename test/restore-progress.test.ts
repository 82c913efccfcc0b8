/**
 * A restore that tells you when it will finish, stops cleanly and resumes,
 * through a real keepd over gRPC: --json status lines carry totals counted
 * from the snapshot's trees before writing, monotone bytes and a final 100%;
 * SIGINT in the middle of a large file (core's test pause point) exits 130
 * with what is incomplete and leaves no partial file under its name; the rerun
 * with --overwrite if-changed restores only what is missing, without reading
 * the complete files' blobs again, and the result is byte-identical.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { allFiles, agentEnv, createToken, Keepd, keepdInit, keepJson, keepdMetric, killAllKeepd, runKeep, startKeep, startKeepd, waitFor } from './keepd-harness.js';
import { compareTrees, jsonLines, MiB, prng, restoredPath, summaryLine, tempDirs } from './helpers.js';

const SMALL = 150;
const SMALL_SIZE = 4096;
const BIG = ['a-big.bin', 'b-big.bin'];
const BIG_SIZE = 3 * MiB;
const FILES = SMALL + BIG.length;
const BYTES = SMALL * SMALL_SIZE + BIG.length * BIG_SIZE;

describe('restore progress, interrupt and resume over gRPC', () => {
  const tmp = tempDirs();
  let dir: string;
  let src: string;
  let keepd: Keepd;
  let env: Record<string, string | undefined>;

  beforeAll(async () => {
    dir = tmp.make('keep-restore-progress-');
    const data = path.join(dir, 'data');
    src = path.join(dir, 'src');
    fs.mkdirSync(path.join(src, 'small'), { recursive: true });
    // The large files come first in the walk; small ones after them.
    BIG.forEach((name, i) => fs.writeFileSync(path.join(src, name), prng(70 + i, BIG_SIZE)));
    for (let i = 0; i < SMALL; i++) fs.writeFileSync(path.join(src, 'small', `f-${String(i).padStart(3, '0')}.bin`), prng(100 + i, SMALL_SIZE));
    await keepdInit(data);
    const agent = await createToken(data, 'agent', { sources: ['files'] });
    keepd = await startKeepd(data, { metrics: true });
    env = agentEnv(keepd, agent.token);
    await keepJson(['init', '--kdf-cost', '12'], env);
    await keepJson(['backup', src, '--source', 'files'], env);
  });

  afterAll(killAllKeepd);

  it('prints status lines with the tree-counted totals, monotone bytes and a final 100%', async () => {
    const target = path.join(dir, 'full');
    const r = await runKeep(['restore', 'latest', '--target', target, '--json'], { ...env, KEEP_NO_PROGRESS: undefined, KEEP_PROGRESS_FPS: '50' });
    expect(r.code, r.stderr).toBe(0);
    const lines = jsonLines(r);
    const status = lines.filter((m) => m.message_type === 'status');
    expect(status.length).toBeGreaterThan(0);
    for (const s of status) {
      // Known from the first line on: counted from the trees before the first write.
      expect(s.total_files).toBe(FILES);
      expect(s.total_bytes).toBe(BYTES);
    }
    for (let i = 1; i < status.length; i++) {
      expect(status[i].bytes_restored).toBeGreaterThanOrEqual(status[i - 1].bytes_restored);
      expect(status[i].percent_done).toBeGreaterThanOrEqual(status[i - 1].percent_done);
      expect(status[i].seconds_elapsed).toBeGreaterThanOrEqual(status[i - 1].seconds_elapsed);
    }
    const last = status.at(-1);
    expect(last.percent_done).toBe(1);
    expect(last.bytes_restored).toBe(BYTES);
    expect(last.files_restored).toBe(FILES);
    expect(last.seconds_remaining).toBe(0);
    const summary = summaryLine(r);
    expect(summary.files_restored).toBe(FILES);
    expect(compareTrees(src, restoredPath(target, src))).toEqual([]);
 
    // With --include, the total is what the selection holds, known before the walk reaches it.
    const some = await runKeep(['restore', 'latest', '--target', path.join(dir, 'some'), '--include', path.join(src, 'small'), '--json'], { ...env, KEEP_NO_PROGRESS: undefined, KEEP_PROGRESS_FPS: '50' });
    expect(some.code, some.stderr).toBe(0);
    const someStatus = jsonLines(some).filter((m) => m.message_type === 'status');
    expect(someStatus.length).toBeGreaterThan(0);
    for (const s of someStatus) expect([s.total_files, s.total_bytes]).toEqual([SMALL, SMALL * SMALL_SIZE]);
    expect(someStatus.at(-1).percent_done).toBe(1);
  });

  it('stops on SIGINT with exit 130 and what is incomplete; --overwrite if-changed finishes only that, identically', async () => {
    const target = path.join(dir, 'resumed');
    const pause = path.join(dir, 'pause-restore');
    const run = startKeep(['restore', 'latest', '--target', target, '--json'], { ...env, KEEP_TEST_PAUSE_AT: `restore-large-file:${pause}` });
    let stderr = '';
    run.child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
    // Paused with a large file's first chunk written: a partial file on disk, never under the file's name.
    await waitFor(() => fs.existsSync(pause) || run.child.exitCode !== null, 60_000, 20);
    expect(fs.existsSync(pause), `the restore ended before its pause point: ${stderr}`).toBe(true);
    const restored = restoredPath(target, src);
    const partials = () => allFiles(target).filter((f) => path.basename(f).startsWith('.keep-partial-'));
    // (the other large file may be under way too)
    expect(partials().length).toBeGreaterThanOrEqual(1);
    for (const p of partials()) expect(path.dirname(p)).toBe(restored);

    run.child.kill('SIGINT');
    await waitFor(() => stderr.includes('keep: interrupted; stopping'), 30_000, 20);
    fs.rmSync(pause);
    const r = await run.result;
    expect(r.code, r.stderr).toBe(130);
    const summary = summaryLine(r);
    expect(summary.interrupted).toBe(true);
    const removed: string[] = summary.partial_files_removed;
    expect(removed.length).toBeGreaterThanOrEqual(1);
    expect(r.stderr).toMatch(/keep: interrupted: \d+ file\(s\) .* not restored/);
    // Nothing partial is left, under a partial name or under its own.
    expect(partials()).toEqual([]);
    for (const p of removed) {
      expect(BIG.map((n) => path.join(src, n))).toContain(p);
      expect(r.stderr).toContain(p);
      expect(fs.existsSync(path.join(target, p))).toBe(false);
    }
    const present = allFiles(restored);
    for (const f of present) expect(fs.readFileSync(f).equals(fs.readFileSync(path.join(src, path.relative(restored, f)))), f).toBe(true);
    expect(present.length + summary.files_incomplete).toBe(FILES);
    const presentBytes = present.reduce((n, f) => n + fs.statSync(f).size, 0);
    expect(summary.bytes_incomplete).toBe(BYTES - presentBytes);

    // The rerun: only the missing files are written, and only their blobs are read from keepd.
    const servedBefore = await keepdMetric(keepd, 'keep_bytes_served_total');
    const again = await runKeep(['restore', 'latest', '--target', target, '--overwrite', 'if-changed', '--json'], env);
    expect(again.code, again.stderr).toBe(0);
    const done = summaryLine(again);
    expect(done.files_restored).toBe(FILES - present.length);
    expect(done.files_skipped).toBe(present.length);
    expect(done.bytes_restored).toBe(BYTES - presentBytes);
    const served = (await keepdMetric(keepd, 'keep_bytes_served_total')) - servedBefore;
    // The missing bytes (stored incompressible: a little more) and the trees; never the complete files' blobs again.
    expect(served).toBeGreaterThanOrEqual(BYTES - presentBytes);
    expect(served).toBeLessThan(BYTES - presentBytes + 256 * 1024);
    expect(compareTrees(src, restored)).toEqual([]);
  });
});
