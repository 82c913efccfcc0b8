/**
 * Issue 20 item 1: append-only index segments beside the packs
 * (packages/core/src/index/segment-format.ts). A segment gathers the trailers of
 * the packs a repository published; a rebuild reads segments and falls back to a
 * pack's trailer only where no segment covers it; prune compacts segments that name
 * deleted packs. Real repositories, real files, real LMDB.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { decodeIndexSegment, deriveKeys, emptyStats, encodeIndexSegment, Id, IndexSegmentLog, ManualClock, newMasterKey, PackWriter, prune, Repository, sealTree, SEGMENT_COMMIT_INTERVAL_MS, STATE_TABLES, toHex, TreeBuilder } from '@keep/core';
import { LocalDirectoryStore, LocalRepoStorage, ObjectRepoStorage, type RepoStorage } from '@keep/core/store';
import { entryMeta, expectKeepError, seededDataBlob, tempDir } from './util.js';

const keys = deriveKeys(newMasterKey());
const salt = crypto.randomBytes(16);
const HOUR = 3_600_000;

const entry = (i: number) => ({ id: crypto.createHash('sha256').update(`blob-${i}`).digest(), type: i % 2, offset: 16 + i * 100, length: 100, hash: crypto.createHash('sha256').update(`hash-${i}`).digest() });
const samplePacks = () => [
  { id: crypto.randomBytes(16).toString('hex'), size: 16 + 3 * 100 + 500, entries: [0, 1, 2].map(entry) },
  { id: crypto.randomBytes(16).toString('hex'), size: 5000, entries: [] },
  { id: crypto.randomBytes(16).toString('hex'), size: 4_294_967_296 + 7, entries: [entry(3)] },
];

describe('index segment format', () => {
  it('encodes and decodes every pack, size and trailer entry', () => {
    const packs = samplePacks();
    const bytes = encodeIndexSegment(packs);
    expect(bytes.subarray(0, 8).toString()).toBe('KEEPISEG');
    expect(bytes[8]).toBe(1);
    expect(decodeIndexSegment(bytes, 'x')).toEqual(packs);
    expect(decodeIndexSegment(encodeIndexSegment([]), 'empty')).toEqual([]);
  });

  it('a flipped byte in the body, a damaged checksum, a truncation or a bad magic is refused as CORRUPT naming the segment', async () => {
    const bytes = encodeIndexSegment(samplePacks());
    const flipped = Buffer.from(bytes);
    flipped[bytes.length - 5] ^= 0xff;
    expect((await expectKeepError(() => decodeIndexSegment(flipped, 'seg-a'), 'CORRUPT')).message).toBe('index segment seg-a is damaged (checksum mismatch)');
    const badSum = Buffer.from(bytes);
    badSum[20] ^= 1;
    expect((await expectKeepError(() => decodeIndexSegment(badSum, 'seg-b'), 'CORRUPT')).message).toMatch(/seg-b is damaged \(checksum mismatch\)/);
    expect((await expectKeepError(() => decodeIndexSegment(bytes.subarray(0, 40), 'seg-c'), 'CORRUPT')).message).toMatch(/seg-c is truncated/);
    await expectKeepError(() => decodeIndexSegment(bytes.subarray(0, bytes.length - 73), 'seg-d'), 'CORRUPT');
    const magic = Buffer.from(bytes);
    magic[0] = 0x41;
    expect((await expectKeepError(() => decodeIndexSegment(magic, 'seg-e'), 'CORRUPT')).message).toMatch(/not a Keep index segment/);
  });
});

describe('RepoStorage index segments: both implementations', () => {
  const t = tempDir('index-segment-storage');
  afterAll(() => t.cleanup());
  const storages: [string, () => RepoStorage][] = [
    ['local directory', () => {
      const dir = path.join(t.dir, 'local');
      fs.mkdirSync(path.join(dir, 'tmp'), { recursive: true });
      return new LocalRepoStorage(dir);
    }],
    ['object store', () => {
      fs.mkdirSync(path.join(t.dir, 'obj-data', 'tmp'), { recursive: true });
      return new ObjectRepoStorage(new LocalDirectoryStore(path.join(t.dir, 'bucket')), path.join(t.dir, 'obj-data', 'tmp'));
    }],
  ];
  it.each(storages)('%s: put is create-only; list sorts; read; delete', async (_, make) => {
    const s = make();
    try {
      expect(await s.listIndexSegments()).toEqual([]);
      const a = encodeIndexSegment(samplePacks());
      await s.putIndexSegment('000000000000002-00000000000000bb', a);
      await s.putIndexSegment('000000000000001-00000000000000aa', encodeIndexSegment([]));
      await expectKeepError(() => s.putIndexSegment('000000000000002-00000000000000bb', encodeIndexSegment([])), 'ALREADY_EXISTS');
      expect(await s.listIndexSegments()).toEqual(['000000000000001-00000000000000aa', '000000000000002-00000000000000bb']);
      expect((await s.readIndexSegment('000000000000002-00000000000000bb')).equals(a)).toBe(true);
      await s.deleteIndexSegments(['000000000000002-00000000000000bb', 'never-there']);
      expect(await s.listIndexSegments()).toEqual(['000000000000001-00000000000000aa']);
      await expectKeepError(() => s.readIndexSegment('000000000000002-00000000000000bb'), 'CORRUPT');
    } finally {
      await s.close();
    }
  });
});

const meta = entryMeta;

const dataBlob = (i: number) => seededDataBlob(keys, salt, `segment-${i}`, 700);

function treeOf(data: { id: Id }[]) {
  const b = new TreeBuilder();
  data.forEach((d, i) => b.addFile(meta(`f${i}`, 'file', 700), [d.id]));
  const t = b.build();
  const sealed = sealTree(keys, salt, t.edges, t.payload, 'none');
  return { id: sealed.id, stored: sealed.bytes };
}

/** Every index record: id (and copy tag) -> its place. */
const places = (repo: Repository) => Object.fromEntries([...repo.allRecords()].map(([id, r, tag]) => [`${toHex(id)}/${tag ?? ''}`, `${r.pack}:${r.offset}:${r.length}`]));
const segmentFiles = (dir: string) => fs.readdirSync(path.join(dir, 'index')).filter((n) => n.endsWith('.seg')).sort();

describe('IndexSegmentLog at snapshot commits', () => {
  const t = tempDir('index-segment-interval');
  afterAll(() => t.cleanup());

  it('a commit starts a segment at most once per SEGMENT_COMMIT_INTERVAL_MS (a WAL archive commits every few seconds); the packs between wait for a later one', async () => {
    const dir = path.join(t.dir, 'local');
    fs.mkdirSync(path.join(dir, 'tmp'), { recursive: true });
    const storage = new LocalRepoStorage(dir);
    const clock = new ManualClock(Date.parse('2026-12-01T00:00:00Z'));
    const log = new IndexSegmentLog(storage, clock, () => undefined);
    const [a, b, c] = samplePacks();
    const written = async () => {
      await log.settled();
      return (await storage.listIndexSegments()).length;
    };
    log.add(a);
    log.committed();
    expect(await written()).toBe(1);
    clock.advance(SEGMENT_COMMIT_INTERVAL_MS - 1000);
    log.add(b);
    log.committed(); // within the interval: b waits
    expect(await written()).toBe(1);
    clock.advance(1000);
    log.add(c);
    log.committed(); // past it: b and c in one segment
    expect(await written()).toBe(2);
    const names = await storage.listIndexSegments();
    const packs = (await Promise.all(names.map(async (n) => decodeIndexSegment(await storage.readIndexSegment(n), n)))).flat();
    expect(packs.map((p) => p.id).sort()).toEqual([a, b, c].map((p) => p.id).sort());
  });
});

describe('a repository writes index segments and rebuilds from them', () => {
  const t = tempDir('index-segment-repo');
  afterAll(() => t.cleanup());

  it('segments at commit cover every pack; a rebuild reads no trailer; a damaged segment falls back to trailers; prune compacts and the rebuild still equals the live index', async () => {
    const clock = new ManualClock(Date.parse('2026-12-01T00:00:00Z'));
    const dir = path.join(t.dir, 'repo');
    const repo = await Repository.init(dir, { clock });
    try {
      // Six packs of ten blobs; snapshot A reads packs 0-2, B packs 3-5.
      const data = Array.from({ length: 60 }, (_, i) => dataBlob(i));
      for (let p = 0; p < 6; p++) {
        const w = repo.openWriter();
        for (const b of data.slice(p * 10, p * 10 + 10)) await w.add(b.id, b.stored);
        await w.flush();
      }
      const rootA = treeOf(data.slice(0, 30));
      const rootB = treeOf(data.slice(30, 60));
      const w = repo.openWriter();
      for (const r of [rootA, rootB]) await w.add(r.id, r.stored);
      await w.flush();
      expect(segmentFiles(dir)).toEqual([]); // nothing committed yet, fewer than SEGMENT_PACKS packs
      const snap = (root: Id) => ({ source: 'files', host: 'h', time: new Date(clock.now()).toISOString(), root: toHex(root), tags: [], stats: emptyStats() });
      const a = await repo.commitSnapshot(snap(rootA.id));
      await repo.commitSnapshot(snap(rootB.id));
      expect(segmentFiles(dir)).toHaveLength(1); // the first commit wrote the seven packs' segment; the second had none pending
      const packs = await repo.storage.listPacks();
      expect(packs).toHaveLength(7);

      const live = places(repo);
      const fromSegments = await repo.rebuildIndex();
      expect(fromSegments).toMatchObject({ segments: 1, damaged_segments: [], packs_from_segments: 7, packs_from_trailers: 0, packs: 7, blobs: 62, damaged_packs: [] });
      expect(places(repo)).toEqual(live);

      // A damaged segment is reported and ignored: its packs come from their trailers, and the index is the same.
      const seg = path.join(dir, 'index', segmentFiles(dir)[0]);
      const good = fs.readFileSync(seg);
      const bad = Buffer.from(good);
      bad[bad.length - 1] ^= 0xff;
      fs.writeFileSync(seg, bad);
      const fromTrailers = await repo.rebuildIndex();
      expect(fromTrailers).toMatchObject({ segments: 0, packs_from_segments: 0, packs_from_trailers: 7, packs: 7 });
      expect(fromTrailers.damaged_segments).toEqual([expect.stringMatching(/checksum mismatch/)]);
      expect(places(repo)).toEqual(live);
      fs.writeFileSync(seg, good);

      // Forget A; two hours on, prune deletes packs 0-2 and repacks the tree pack: the segment naming them is replaced.
      await repo.removeSnapshots([a.id]);
      clock.advance(2 * HOUR);
      const p = await prune(repo);
      expect(p.packs_deleted).toBe(3);
      expect(p.index_segments_replaced).toBeGreaterThanOrEqual(1);
      expect(p.index_segments_written).toBe(1);
      const after = segmentFiles(dir);
      expect(after).toHaveLength(1);
      expect(after[0]).not.toBe(path.basename(seg));
      const stored = new Set((await repo.storage.listPacks()).map((x) => x.id));
      const named = decodeIndexSegment(fs.readFileSync(path.join(dir, 'index', after[0])), after[0]).map((x) => x.id);
      expect(named.sort()).toEqual([...stored].sort()); // exactly the packs still stored

      const pruned = places(repo);
      const rebuilt = await repo.rebuildIndex();
      expect(rebuilt).toMatchObject({ segments: 1, packs_from_segments: stored.size, packs_from_trailers: 0, damaged_segments: [] });
      expect(places(repo)).toEqual(pruned);
      expect((await repo.check({ readData: true })).errors).toEqual([]);
    } finally {
      await repo.close();
    }
  });

  it("recover writes the segment a killed process left unwritten, from the packs state.mdb's journal names", async () => {
    const dir = path.join(t.dir, 'journal');
    const first = await Repository.init(dir);
    first.stateStore(); // a keepd's repository: state.mdb exists
    await first.close();
    const repo = await Repository.open(dir);
    try {
      // What a killed keepd leaves: a published, indexed pack, recorded in the journal, named by no segment.
      const b = dataBlob(1000);
      const pw = new PackWriter(path.join(dir, 'tmp'), repo.packsDir);
      pw.add(b.id, 0, b.stored);
      const sealed = pw.seal();
      await repo.storage.publishPack(sealed);
      await repo.indexPack(sealed.id, sealed.size, sealed.entries);
      await repo.database<{ size: number }>(STATE_TABLES.indexSegmentPending).put(sealed.id, { size: sealed.size });
      // ...and one the journal names that a prune deleted since: it only leaves the journal.
      await repo.database<{ size: number }>(STATE_TABLES.indexSegmentPending).put('ab'.repeat(16), { size: 100 });
      expect(segmentFiles(dir)).toEqual([]);

      expect(await repo.recoverIndexSegments()).toBe(1);
      const segs = segmentFiles(dir);
      expect(segs).toHaveLength(1);
      expect(decodeIndexSegment(fs.readFileSync(path.join(dir, 'index', segs[0])), segs[0])).toEqual([{ id: sealed.id, size: sealed.size, entries: sealed.entries }]);
      expect([...repo.database(STATE_TABLES.indexSegmentPending).getKeys()]).toEqual([]);
      expect(await repo.recoverIndexSegments()).toBe(0);

      // A pack published through the repository is journaled until its segment is stored.
      const w = repo.openWriter();
      const c = dataBlob(1001);
      await w.add(c.id, c.stored);
      await w.flush();
      expect([...repo.database(STATE_TABLES.indexSegmentPending).getKeys()]).toHaveLength(1);
      await repo.flushIndexSegments();
      expect([...repo.database(STATE_TABLES.indexSegmentPending).getKeys()]).toEqual([]);
      expect(segmentFiles(dir)).toHaveLength(2);
      expect((await repo.rebuildIndex())).toMatchObject({ packs_from_segments: 2, packs_from_trailers: 0 });
    } finally {
      await repo.close();
    }
  });
});
