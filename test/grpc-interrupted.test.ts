/**
 * An agent killed (SIGKILL) in the middle of a backup over gRPC: the rerun
 * sends only what keepd does not durably hold yet (the packs flushed before
 * the kill are not sent again), the snapshot restores byte-identical and the
 * repository passes keepd's keyless check, reading every blob.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compareTrees, MiB, packFiles, restoredPath, tempDirs } from './helpers.js';
import { agentEnv, createToken, Keepd, keepdInit, keepdJson, keepJson, keepdMetric, killAllKeepd, packBytes, runKeep, startKeep, startKeepd, waitFor } from './keepd-harness.js';

const FILES = 6;
const FILE_SIZE = 12 * MiB;
const TOTAL = FILES * FILE_SIZE;

describe('an agent killed mid-backup, then rerun', () => {
  const tmp = tempDirs();
  let dir: string;
  let data: string;
  let src: string;
  let keepd: Keepd;
  let env: Record<string, string | undefined>;

  beforeAll(async () => {
    dir = tmp.make('keep-grpc-kill-');
    data = path.join(dir, 'data');
    src = path.join(dir, 'src');
    fs.mkdirSync(src);
    for (let i = 0; i < FILES; i++) fs.writeFileSync(path.join(src, `random-${i}.bin`), crypto.randomBytes(FILE_SIZE));
    await keepdInit(data);
    // A default (source-scoped) agent token: the rerun must still reuse what its own killed session stored.
    const agent = await createToken(data, 'agent', { sources: ['db'] });
    keepd = await startKeepd(data, { metrics: true });
    env = agentEnv(keepd, agent.token);
    await keepJson(['init', '--kdf-cost', '12'], env);
  });

  afterAll(killAllKeepd);

  it('resends only what was not stored, restores identical, and keepd check --read-data passes', async () => {
    const packsBefore = packFiles(data).length;
    const run = startKeep(['backup', src, '--source', 'db', '--json'], env);
    // Kill the agent as soon as keepd has made a pack durable (packs close at 16 MiB).
    await waitFor(() => packFiles(data).length > packsBefore || run.child.exitCode !== null, 60_000, 5);
    run.child.kill('SIGKILL');
    const killed = await run.result;
    expect(killed.signal, `the backup finished before it could be killed: ${killed.stdout}`).toBe('SIGKILL');

    // Let keepd finish whatever it had already received, then note what is durable.
    let last = -1;
    await waitFor(() => {
      const now = packBytes(data);
      const stable = now === last;
      last = now;
      return stable;
    }, 30_000, 300);
    const storedBeforeRerun = packBytes(data);
    expect(storedBeforeRerun).toBeGreaterThan(12 * MiB);
    expect(storedBeforeRerun).toBeLessThan(TOTAL - 12 * MiB);
    // No snapshot is half there.
    expect(await keepJson(['snapshots'], env)).toEqual([]);
    const dedupedBefore = await keepdMetric(keepd, 'keep_blobs_deduplicated_total');

    const rerun = await keepJson(['backup', src, '--source', 'db'], env);
    expect(rerun.files_new).toBe(FILES);
    expect(rerun.bytes_read).toBe(TOTAL);
    // The rerun sent only what keepd did not hold: the flushed packs were not sent again.
    expect(rerun.bytes_sent).toBeLessThan(TOTAL - 12 * MiB);
    expect(rerun.bytes_sent).toBeLessThan(TOTAL - storedBeforeRerun + 2 * MiB);
    expect(rerun.bytes_sent).toBeGreaterThan(TOTAL - storedBeforeRerun - 17 * MiB);
    // ...and keepd agrees: no blob it already held arrived again.
    expect(await keepdMetric(keepd, 'keep_blobs_deduplicated_total')).toBe(dedupedBefore);
    // Everything is stored about once (random data: stored size ~ data size).
    expect(packBytes(data)).toBeLessThan(TOTAL * 1.05 + 17 * MiB);

    const snaps = await keepJson(['snapshots', '--source', 'db'], env);
    expect(snaps.map((s: any) => s.id)).toEqual([rerun.snapshot]);

    const target = path.join(dir, 'restore');
    const r = await runKeep(['restore', 'latest', '--source', 'db', '--target', target], env);
    expect(r.code, r.stderr).toBe(0);
    expect(compareTrees(src, restoredPath(target, src))).toEqual([]);

    // While keepd still runs (LMDB is multi-process), then after it drained and stopped.
    const live = await keepdJson(['check', '--data', data, '--read-data']);
    expect(live.ok, JSON.stringify(live.errors)).toBe(true);
    expect(await keepd.stop()).toEqual({ code: 0, signal: null });
    const c = await keepdJson(['check', '--data', data, '--read-data']);
    expect(c.ok, JSON.stringify(c.errors)).toBe(true);
    expect(c.snapshots).toBe(1);
    expect(c.blobs_read).toBe(c.blobs);
    expect(c.bytes_read).toBeGreaterThan(TOTAL);
  });
});
