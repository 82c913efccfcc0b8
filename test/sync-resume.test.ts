/**
 * Issue 6, replication under interruption and independent retention:
 *
 * 3. `keepd sync` SIGKILLed mid-way through a ~60 MiB snapshot (as soon as
 *    its second pack lands in REPLICA/packs, so the first is surely indexed)
 *    and run again: the killed run published nothing, the rerun fetches less
 *    than the snapshot holds (landed packs are reused), completes, restores
 *    and checks clean;
 * 8. retention is each repository's own: a snapshot forgotten (and pruned) on
 *    the primary stays on the replica and still restores, and sync never
 *    deletes; a forget + prune that removes and repacks blobs on the primary
 *    while a sync is in flight (the sync process is stopped with SIGSTOP
 *    after its first pack, so the prune surely runs in the middle of it) does
 *    not fail the sync for snapshots that still exist.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compareTrees, fingerprint, MiB, prng, restoredPath, tempDirs } from './helpers.js';
import { agentEnv, createToken, Keepd, keepdInit, keepdJson, keepJson, packBytes, runKeep } from './keepd-harness.js';
import { alive, killAllServing, localSnapshotIds, packNames, serveWith, snapshotFiles, startSync, status, syncOk, syncOnce } from './sync-util.js';

const PASSWORD = 'resume passphrase';
/** Past GC_GRACE (1 h) + GC_CLOCK_SLACK: a prune this far ahead collects what was just forgotten. */
const TWO_HOURS_MS = 2 * 3_600_000;

/** Resolve true once `pred` holds, false if `until` settles first. */
function pollUntil(pred: () => boolean, until: Promise<unknown>, everyMs = 2): Promise<boolean> {
  return new Promise((resolve) => {
    let done = false;
    const finish = (v: boolean) => {
      if (!done) (done = true), resolve(v);
    };
    void until.then(
      () => finish(false),
      () => finish(false),
    );
    const tick = () => {
      if (done) return;
      if (pred()) return finish(true);
      setTimeout(tick, everyMs);
    };
    tick();
  });
}

function writeRandom(file: string, size: number): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, crypto.randomBytes(size));
}

describe('keepd sync: interrupted pulls and independent retention', () => {
  const tmp = tempDirs();
  let dir: string;
  let P: string;
  let R: string;
  let primary: Keepd;
  let env: Record<string, string | undefined>;
  let replicaToken: string;

  beforeAll(async () => {
    dir = tmp.make('keep-sync-resume-');
    P = path.join(dir, 'primary');
    R = path.join(dir, 'replica');
    await keepdInit(P);
    const agent = await createToken(P, 'agent', { sources: ['bulk', 'files', 'gone', 'mixed'] });
    replicaToken = (await createToken(P, 'replica')).token;
    primary = await serveWith(P);
    env = agentEnv(primary, agent.token, PASSWORD);
    await keepJson(['init', '--kdf-cost', '12'], env);
  });

  afterAll(killAllServing);

  it('(3) a sync SIGKILLed mid-way resumes: the rerun fetches less than the snapshot, completes and restores', async () => {
    alive(primary, 'primary');
    const src = path.join(dir, 'bulk');
    writeRandom(path.join(src, 'one.bin'), 40 * MiB);
    writeRandom(path.join(src, 'two.bin'), 20 * MiB);
    fs.writeFileSync(path.join(src, 'note.txt'), 'sixty MiB of noise\n');
    const x = await keepJson(['backup', src, '--source', 'bulk'], env);
    const total = x.bytes_sent;
    expect(total).toBeGreaterThan(60 * MiB);

    // R does not exist: the killed run creates it.
    const run = startSync(R, primary.url, replicaToken);
    // A pack is renamed into packs/ a moment before the index learns it; the sync only starts
    // filling the next pack after that. So once a second pack shows, the first is surely indexed:
    // kill then (about 32 of the 60 MiB across).
    const landed = await pollUntil(() => packNames(R).length >= 2, run.result, 1);
    expect(landed, 'the sync finished before two packs landed').toBe(true);
    run.child.kill('SIGKILL');
    const killed = await run.result;
    expect(killed.signal, `the sync was not killed mid-way: exit ${killed.code}\n${killed.stdout}`).toBe('SIGKILL');
    expect(packNames(R).length).toBeGreaterThan(0);
    expect(packBytes(R)).toBeLessThan(total);
    // Nothing half-there is visible, and what landed is consistent.
    expect(snapshotFiles(R)).toEqual([]);
    const c0 = await keepdJson(['check', '--data', R, '--read-data']);
    expect(c0.ok, JSON.stringify(c0.errors)).toBe(true);
    expect(c0.snapshots).toBe(0);

    const resumed = await syncOk(R, primary.url, replicaToken);
    expect(resumed.snapshots_synced).toEqual([x.snapshot]);
    expect(resumed.snapshots_failed).toEqual([]);
    // The landed packs (at least one of 16 MiB indexed) were kept: at least 8 MiB less crossed again.
    expect(resumed.bytes_fetched).toBeGreaterThan(0);
    expect(resumed.bytes_fetched).toBeLessThan(total - 8 * MiB);
    expect(resumed.blobs_present).toBeGreaterThan(0);

    const out = path.join(dir, 'restore-bulk');
    const r = await runKeep(['restore', x.snapshot, '--target', out], { KEEP_REPO: R, KEEP_PASSWORD: PASSWORD });
    expect(r.code, r.stderr).toBe(0);
    expect(compareTrees(src, restoredPath(out, src), { rootMeta: true })).toEqual([]);
    const c = await keepdJson(['check', '--data', R, '--read-data']);
    expect(c.ok, JSON.stringify(c.errors)).toBe(true);
    expect(c.snapshots).toBe(1);
    fs.rmSync(out, { recursive: true, force: true });
  });

  it('(8a) forget and prune on the primary do not reach the replica: the old snapshot stays there and restores', async () => {
    alive(primary, 'primary');
    const src = path.join(dir, 'files');
    fs.mkdirSync(src);
    fs.writeFileSync(path.join(src, 'a.txt'), 'first version\n');
    fs.writeFileSync(path.join(src, 'old.bin'), prng(11, 3 * MiB));
    const before = fingerprint(src);
    const f1 = await keepJson(['backup', src, '--source', 'files'], env);
    fs.writeFileSync(path.join(src, 'a.txt'), 'second version\n');
    fs.rmSync(path.join(src, 'old.bin'));
    const f2 = await keepJson(['backup', src, '--source', 'files'], env);
    expect((await syncOk(R, primary.url, replicaToken)).snapshots_synced).toEqual([f1.snapshot, f2.snapshot]);

    // The primary forgets f1 and collects its blobs.
    const fg = await keepdJson(['forget', '--data', P, '--source', 'files', '--keep-last', '1']);
    expect(fg.groups[0].removed).toEqual([f1.snapshot]);
    const pr = await keepdJson(['prune', '--data', P], { env: { KEEP_CLOCK_OFFSET_MS: String(TWO_HOURS_MS) } });
    expect(pr.blobs_removed).toBeGreaterThan(0);
    expect(snapshotFiles(P)).not.toContain(f1.snapshot);

    fs.writeFileSync(path.join(src, 'a.txt'), 'third version\n');
    const f3 = await keepJson(['backup', src, '--source', 'files'], env);
    const rep = await syncOk(R, primary.url, replicaToken);
    expect(rep.snapshots_synced).toEqual([f3.snapshot]);
    expect(rep.snapshots_failed).toEqual([]);

    // The replica keeps f1 (sync adds, never deletes); it still restores, although the primary lost its data.
    const ids = await localSnapshotIds(R, PASSWORD);
    expect(ids).toEqual(expect.arrayContaining([f1.snapshot, f2.snapshot, f3.snapshot]));
    expect(snapshotFiles(R)).toContain(f1.snapshot);
    const out = path.join(dir, 'restore-f1');
    const r = await runKeep(['restore', f1.snapshot, '--target', out], { KEEP_REPO: R, KEEP_PASSWORD: PASSWORD });
    expect(r.code, r.stderr).toBe(0);
    expect(fingerprint(restoredPath(out, src))).toEqual(before);
    const onPrimary = await runKeep(['restore', f1.snapshot, '--target', path.join(dir, 'restore-f1-primary')], env);
    expect(onPrimary.code).not.toBe(0);
    const c = await keepdJson(['check', '--data', R, '--read-data']);
    expect(c.ok, JSON.stringify(c.errors)).toBe(true);
  });

  it('(8b) forget + prune on the primary while a sync is in flight: snapshots that still exist sync and restore', async () => {
    alive(primary, 'primary');
    // gone: g1 = {shared 6 MiB, unique 10 MiB}, g2 = {shared}. Forgetting g1 leaves the pack that
    // holds shared mostly dead, so prune repacks it: shared's blobs move while the sync needs them.
    const gsrc = path.join(dir, 'gone');
    writeRandom(path.join(gsrc, 'shared.bin'), 6 * MiB);
    writeRandom(path.join(gsrc, 'unique.bin'), 10 * MiB);
    const g1 = await keepJson(['backup', gsrc, '--source', 'gone'], env);
    fs.rmSync(path.join(gsrc, 'unique.bin'));
    const g2 = await keepJson(['backup', gsrc, '--source', 'gone'], env);
    // mixed: y = {a-bulk 28 MiB, z-shared = shared} tagged keepme; y2 = y + extra, untagged.
    const msrc = path.join(dir, 'mixed');
    writeRandom(path.join(msrc, 'a-bulk.bin'), 28 * MiB);
    fs.copyFileSync(path.join(gsrc, 'shared.bin'), path.join(msrc, 'z-shared.bin'));
    const y = await keepJson(['backup', msrc, '--source', 'mixed', '--tag', 'keepme'], env);
    const yManifest = fingerprint(msrc);
    writeRandom(path.join(msrc, 'extra.bin'), 2 * MiB);
    const y2 = await keepJson(['backup', msrc, '--source', 'mixed'], env);

    // Sync mixed (y, then y2); stop the sync process as soon as its first pack has landed.
    const packsBefore = new Set(packNames(R));
    const run = startSync(R, primary.url, replicaToken, 'mixed');
    const landed = await pollUntil(() => packNames(R).some((p) => !packsBefore.has(p)), run.result);
    expect(landed, 'the sync finished before a pack landed').toBe(true);
    run.child.kill('SIGSTOP');
    let pr: any;
    try {
      // Meanwhile on the primary: forget g1 and y2, then prune (two hours ahead: they count as old).
      const fg = await keepdJson(['forget', '--data', P, '--source', 'gone', '--keep-last', '1']);
      expect(fg.groups[0].removed).toEqual([g1.snapshot]);
      const fm = await keepdJson(['forget', '--data', P, '--source', 'mixed', '--keep-tag', 'keepme']);
      expect(fm.groups[0].removed).toEqual([y2.snapshot]);
      pr = await keepdJson(['prune', '--data', P], { env: { KEEP_CLOCK_OFFSET_MS: String(TWO_HOURS_MS) } });
    } finally {
      run.child.kill('SIGCONT');
    }
    expect(pr.blobs_removed).toBeGreaterThan(0);
    expect(pr.packs_repacked + pr.packs_deleted).toBeGreaterThan(0);
    expect(pr.packs_repacked).toBeGreaterThan(0);
    const done = await run.result;
    expect(done.code, done.stderr).toBe(0);
    const rep = JSON.parse(done.stdout);
    // y still exists on the primary: it synced, although its shared blobs moved under the sync.
    // y2 was forgotten meanwhile: gone, which is neither a failure nor pending.
    expect(rep.snapshots_synced).toEqual([y.snapshot]);
    expect(rep.snapshots_failed).toEqual([]);
    expect(rep.snapshots_pending).toBe(0);
    expect(rep.lag_s).toBe(0);
    const st = (await status(R)).replication[0];
    expect(st).toMatchObject({ state: 'ok', snapshots_pending: 0, lag_s: 0 });
    expect(st.last_error).toBeUndefined();
    expect(snapshotFiles(R)).toContain(y.snapshot);
    expect(snapshotFiles(R)).not.toContain(g1.snapshot);

    const out = path.join(dir, 'restore-y');
    const r = await runKeep(['restore', y.snapshot, '--target', out], { KEEP_REPO: R, KEEP_PASSWORD: PASSWORD });
    expect(r.code, r.stderr).toBe(0);
    expect(fingerprint(restoredPath(out, msrc))).toEqual(yManifest);
    const [cr, cp] = await Promise.all([keepdJson(['check', '--data', R, '--read-data']), keepdJson(['check', '--data', P])]);
    expect(cr.ok, JSON.stringify(cr.errors)).toBe(true);
    expect(cp.ok, JSON.stringify(cp.errors)).toBe(true);

    // A later sync of everything: g2 arrives, nothing is deleted, y2 is not listed any more.
    const later = await syncOnce(R, primary.url, replicaToken);
    expect(later.code, later.stderr).toBe(0);
    expect(later.report?.snapshots_synced).toEqual([g2.snapshot]);
    expect(snapshotFiles(R)).toEqual(expect.arrayContaining([y.snapshot, g2.snapshot]));
  });
});
