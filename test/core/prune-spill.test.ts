/**
 * Issue 20 item 3: prune in bounded memory. The mark set, the candidates and
 * the per-pack counts spill to scratch LMDB files past `spillAt` entries, and
 * the sweep commits in transactions of `sweepBatch` records. Forced low here,
 * a small repository goes through the disk-backed paths and must give the
 * same result as the in-memory ones on an identical repository.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { deriveKeys, emptyStats, Id, ManualClock, newMasterKey, prune, PruneReport, Repository, sealTree, SpillingSet, toHex, TreeBuilder } from '@keep/core';
import { entryMeta, seededDataBlob, tempDir } from './util.js';

const keys = deriveKeys(newMasterKey());
const salt = crypto.randomBytes(16);
const HOUR = 3_600_000;

const meta = entryMeta;

const dataBlob = (i: number) => seededDataBlob(keys, salt, `spill-${i}`, 600);

/** A tree of one file per blob in [from, to), optionally with a subdirectory. */
function tree(data: { id: Id }[], from: number, to: number, subdirs: { name: string; id: Id }[] = []) {
  const b = new TreeBuilder();
  for (let i = from; i < to; i++) b.addFile(meta(`f${i}`, 'file', 600), [data[i].id]);
  for (const s of subdirs) b.addDir(meta(s.name, 'dir'), s.id);
  const t = b.build();
  const sealed = sealTree(keys, salt, t.edges, t.payload, 'medium');
  return { id: sealed.id, stored: sealed.bytes };
}

/**
 * 240 data blobs in 12 packs; snapshot A = sub1 (0..79) + shared (80..159),
 * B = shared + sub3 (160..239). A is forgotten; two hours later one more
 * unreferenced blob is stored (recent: kept). Prune then removes 0..79, sub1 and A's root.
 */
async function buildRepository(dir: string, clock: ManualClock): Promise<Repository> {
  const repo = await Repository.init(dir, { clock });
  const data = Array.from({ length: 240 }, (_, i) => dataBlob(i));
  for (let p = 0; p < 12; p++) {
    const w = repo.openWriter();
    for (const b of data.slice(p * 20, p * 20 + 20)) await w.add(b.id, b.stored);
    await w.flush();
  }
  const sub1 = tree(data, 0, 80);
  const shared = tree(data, 80, 160);
  const sub3 = tree(data, 160, 240);
  const rootA = tree(data, 0, 0, [{ name: 'sub1', id: sub1.id }, { name: 'shared', id: shared.id }]);
  const rootB = tree(data, 0, 0, [{ name: 'shared', id: shared.id }, { name: 'sub3', id: sub3.id }]);
  const w = repo.openWriter();
  for (const t of [sub1, shared, sub3, rootA, rootB]) await w.add(t.id, t.stored);
  await w.flush();
  const snap = (root: Id) => ({ source: '/home/test', host: 'h', time: new Date(clock.now()).toISOString(), root: toHex(root), tags: [], stats: emptyStats() });
  const a = await repo.commitSnapshot(snap(rootA.id));
  await repo.commitSnapshot(snap(rootB.id));
  await repo.removeSnapshots([a.id]);
  clock.advance(2 * HOUR);
  const recent = dataBlob(9999);
  const rw = repo.openWriter();
  await rw.add(recent.id, recent.stored);
  await rw.flush();
  return repo;
}

const ids = (repo: Repository) => [...repo.allRecords()].map(([id]) => toHex(id)).sort();
const usageOf = (repo: Repository, spillAt?: number) => {
  const u = repo.packUsage({ spillAt });
  try {
    return new Map(u);
  } finally {
    u.close();
  }
};
const comparable = (r: PruneReport) => ({ ...r, duration_s: 0 });

describe('prune in bounded memory', () => {
  const dirs: ReturnType<typeof tempDir>[] = [];
  const repos: Repository[] = [];
  afterEach(async () => {
    for (const r of repos.splice(0)) await r.close();
    for (const d of dirs.splice(0)) d.cleanup();
  });
  async function repository(): Promise<Repository> {
    const d = tempDir('prune-spill');
    dirs.push(d);
    const repo = await buildRepository(d.dir, new ManualClock(Date.parse('2026-03-05T00:00:00Z')));
    repos.push(repo);
    return repo;
  }

  it('a spilled mark set, candidate set and pack usage, and a batched sweep, give the in-memory result', async () => {
    const inMemory = await repository();
    const spilled = await repository();
    expect(ids(spilled)).toEqual(ids(inMemory));
    // Per-pack counts merged through the scratch table (one pack per Map) equal the Map's, pack by pack.
    expect(usageOf(spilled, 1)).toEqual(usageOf(spilled));
    expect(usageOf(spilled, 1).size).toBe(14);

    const epochs = [inMemory.gcEpoch(), spilled.gcEpoch()];
    const plain = await prune(inMemory);
    const small = await prune(spilled, { spillAt: 4, sweepBatch: 7 });
    expect(plain.blobs_removed).toBe(82);
    expect(plain.blobs_live).toBe(163);
    expect(plain.blobs_kept_recent).toBe(1);
    expect(plain.packs_deleted).toBe(4);
    expect(comparable(small)).toEqual({ ...comparable(plain), cutoff: small.cutoff });
    expect(ids(spilled)).toEqual(ids(inMemory));
    // One epoch bump per sweep transaction: 82 records in batches of 7 take 12.
    expect(inMemory.gcEpoch() - epochs[0]).toBe(1);
    expect(spilled.gcEpoch() - epochs[1]).toBe(12);
    // No scratch file is left in tmp/ (unlinked as soon as open).
    expect(fs.readdirSync(path.join(spilled.dir, 'tmp')).filter((n) => n.startsWith('scratch-'))).toEqual([]);
    // What is left is whole.
    const check = await spilled.check();
    expect(check.errors).toEqual([]);
    expect(check.ok).toBe(true);
  });

  it('with a deletion delay (object storage) dropped packs stay, recorded and not orphans, until a prune past the delay deletes them', async () => {
    const repo = await repository();
    const clock = repo.clock as ManualClock;
    const packsBefore = (await repo.storage.listPacks()).map((p) => p.id);
    // A reader that looked this blob up before the prune reads from its pack afterwards.
    const gone = dataBlob(0).id;
    const seenBefore = repo.lookup(gone)!;
    const first = await prune(repo, { deleteDelayMs: HOUR });
    expect(first.packs_deleted).toBe(4);
    expect(first.packs_pending_deletion).toBe(4);
    expect(repo.lookup(gone)).toBeUndefined();
    expect((await repo.storage.listPacks()).map((p) => p.id).sort()).toEqual([...packsBefore].sort());
    expect((await repo.storage.readTrailer(seenBefore.pack)).some((e) => e.id.equals(gone))).toBe(true);
    const waiting = await repo.check();
    expect(waiting.ok).toBe(true);
    expect(waiting.orphan_packs).toEqual([]);
    expect(waiting.packs_pending_deletion).toBe(4);
    clock.advance(HOUR / 2);
    const early = await prune(repo, { deleteDelayMs: HOUR });
    expect(early.delayed_packs_deleted).toBe(0);
    expect(early.orphan_packs_deleted).toBe(0);
    clock.advance(HOUR / 2 + 1);
    const due = await prune(repo, { deleteDelayMs: HOUR });
    expect(due.delayed_packs_deleted).toBe(4);
    expect(due.packs_pending_deletion).toBe(0);
    const after = (await repo.storage.listPacks()).map((p) => p.id);
    expect(after).toHaveLength(packsBefore.length - 4);
    expect(after).not.toContain(seenBefore.pack);
    const whole = await repo.check();
    expect(whole.ok).toBe(true);
    expect(whole.orphan_packs).toEqual([]);
    expect(whole.packs_pending_deletion).toBe(0);
  });

  it('a spilled seen set answers like a Set, keeps ids in 33 bytes and tagged ids in 37, and is empty once closed', () => {
    const hex = (i: number) => crypto.createHash('sha256').update(String(i)).digest('hex');
    const keysIn = [...Array.from({ length: 50 }, (_, i) => hex(i)), `${hex(1)}/3`, `${hex(2)}/70000`, 'a-tree-in-view-2', `${hex(3)}/x`];
    const s = new SpillingSet(4);
    for (const k of [...keysIn, ...keysIn.slice(0, 10)]) s.add(k);
    expect(s.spilled).toBe(true);
    expect(s.size).toBe(keysIn.length);
    for (const k of keysIn) expect(s.has(k)).toBe(true);
    expect(s.has(hex(99))).toBe(false);
    expect(s.has(`${hex(1)}/4`)).toBe(false);
    expect([...s].sort()).toEqual([...keysIn].sort());
    s.close();
    expect(s.size).toBe(0);
    expect(s.has(hex(0))).toBe(false);
  });
});
