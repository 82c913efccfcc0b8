/**
 * Maintenance excludes maintenance (issue 13, item 3): prune, repack, orphan
 * cleanup and every index rebuild take one lock; a rebuild builds a new index
 * file aside and swaps it in, so nothing ever sees a half-built index; an
 * orphan pack whose trailer is intact is adopted, never deleted. And one data
 * directory is served by one keepd at a time. Real keep and keepd processes.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { check, clockEnv, manifest, restoreManifest, TWO_HOURS_MS, writeRandom } from './gc-util.js';
import { initRepo, keepJson, packFiles, tempDirs } from './helpers.js';
import { KEEPD_BIN, killAllKeepd, runKeepd, start, startKeepd, waitFor } from './keepd-harness.js';

describe('prune, rebuild-index and keepd serve exclude each other', () => {
  const tmp = tempDirs();
  let dir: string;
  let repo: string;
  let env: Record<string, string>;
  const snaps: { id: string; src: string }[] = [];

  /** A new source directory with its own random file, backed up: one more pack. */
  async function backupNew(name: string): Promise<{ id: string; src: string }> {
    const src = path.join(dir, name);
    writeRandom(path.join(src, 'data.bin'), 300_000);
    fs.writeFileSync(path.join(src, 'note.txt'), `${name}\n`.repeat(100));
    const b = await keepJson(['backup', src, '--source', name], { env });
    return { id: b.snapshot, src };
  }

  async function expectAllRestore(): Promise<void> {
    for (const s of snaps) {
      const r = await restoreManifest(env, s.id, s.src, dir);
      expect(r.ok ? 'ok' : `${r.code}: ${r.stderr}`).toBe('ok');
      if (r.ok) expect(r.manifest).toEqual(manifest(s.src));
    }
  }

  beforeAll(async () => {
    dir = tmp.make('keep-maint-lock-');
    ({ repo, env } = await initRepo(dir));
    for (let i = 0; i < 8; i++) snaps.push(await backupNew(`s${i}`));
    expect(packFiles(repo).length).toBeGreaterThanOrEqual(8);
  });

  afterAll(killAllKeepd);

  it('a prune started while rebuild-index runs deletes nothing live; a backup meanwhile is kept', async () => {
    const before = packFiles(repo).sort();
    const flag = path.join(dir, 'rebuild-paused');
    const rebuild = start(KEEPD_BIN, ['rebuild-index', '--data', repo, '--json'], { env: { KEEP_TEST_PAUSE_AT: `rebuild:${flag}` } });
    await waitFor(() => fs.existsSync(flag) || rebuild.child.exitCode !== null, 60_000);
    expect(fs.existsSync(flag), 'rebuild-index reached its pause point').toBe(true);

    // A prune "two hours later" (every pack old enough to look orphaned), while half the packs are reindexed.
    const pr = await runKeepd(['prune', '--data', repo, '--json'], { env: clockEnv(TWO_HOURS_MS) });
    // Backups never wait for maintenance: one runs now, into the index being replaced.
    const during = await backupNew('during');
    fs.rmSync(flag);
    const rb = await rebuild.result;
    expect(rb.code, rb.stderr).toBe(0);
    snaps.push(during);

    expect(packFiles(repo).filter((p) => before.includes(p))).toEqual(before);
    const c = await check(repo);
    expect(c.errors).toEqual([]);
    expect(c.orphan_packs).toEqual([]);
    await expectAllRestore();
    // The prune was refused, with restic's "failed to lock" exit code.
    expect(pr.code, pr.stderr).toBe(11);
    expect(pr.stderr).toMatch(/rebuild-index is running \(pid \d+\)/);

    // Once the rebuild is done, prune runs, and still deletes nothing live.
    const pr2 = await runKeepd(['prune', '--data', repo, '--json'], { env: clockEnv(TWO_HOURS_MS) });
    expect(pr2.code, pr2.stderr).toBe(0);
    expect((await check(repo)).errors).toEqual([]);
    await expectAllRestore();
  });

  it('prune adopts an unindexed pack whose trailer is intact (an index that lost writes), never deletes it', async () => {
    // The index as it was before the next backup: what a rebuild racing a writer, or a restored copy, leaves.
    const saved = fs.readFileSync(path.join(repo, 'index.mdb'));
    const late = await backupNew('late');
    snaps.push(late);
    fs.rmSync(path.join(repo, 'index.mdb-lock'), { force: true });
    fs.writeFileSync(path.join(repo, 'index.mdb'), saved);

    const pr = await runKeepd(['prune', '--data', repo, '--json'], { env: clockEnv(TWO_HOURS_MS) });
    expect(pr.code, pr.stderr).toBe(0);
    const c = await check(repo);
    expect(c.errors).toEqual([]);
    await expectAllRestore();
    expect(JSON.parse(pr.stdout).orphan_packs_adopted).toBeGreaterThanOrEqual(1);
  });

  it('a second keepd serve on the same --data exits 11; a dead one does not block the next', async () => {
    const first = await startKeepd(repo);
    const second = await runKeepd(['serve', '--data', repo, '--listen', '127.0.0.1:0'], { timeoutMs: 30_000 });
    const firstAlive = first.exited() === undefined;
    expect(firstAlive).toBe(true);
    expect(second.code, second.stdout + second.stderr).toBe(11);
    expect(second.stderr).toMatch(/^keepd: error: .*keepd serve is already running on .* \(pid \d+\)/);
    // rebuild-index swaps the index file under a running keepd: refused too.
    const rb = await runKeepd(['rebuild-index', '--data', repo]);
    expect(rb.code).toBe(11);

    // kill -9 leaves the lock file behind; its pid is dead, so the next keepd takes over.
    await first.stop('SIGKILL');
    const third = await startKeepd(repo);
    expect((await third.stop()).code).toBe(0);
    const fourth = await startKeepd(repo);
    await fourth.stop();
  });
});
