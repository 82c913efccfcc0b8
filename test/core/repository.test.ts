import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { open as openLmdb } from 'lmdb';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  chunkId,
  decodeBlobRecord,
  decodeTreePayload,
  encodeBlobRecord,
  fileChunks,
  findEntry,
  DEFAULT_CHUNKER,
  deriveKeys,
  emptyStats,
  Id,
  ManualClock,
  newMasterKey,
  NewSnapshot,
  openBlob,
  packPath,
  PACK_APPEND_BYTES,
  PackWriter,
  PACK_TARGET_SIZE,
  Repository,
  sealData,
  sealTree,
  storageHash,
  toHex,
  TreeBuilder,
  TreeEntry,
} from '@keep/core';
import { BlobType, compressibleBytes, expectKeepError, flipByteInFile, seededBytes, tempDir } from './util.js';

const keys = deriveKeys(newMasterKey());
const salt = crypto.randomBytes(16);

interface Blob {
  id: Id;
  stored: Buffer;
  plain: Buffer;
}

function dataBlob(seed: string, n = 3000): Blob {
  const plain = seed.startsWith('z') ? compressibleBytes(n) : seededBytes(seed, n);
  const id = chunkId(keys, plain);
  return { id, stored: sealData(keys, salt, id, plain, 'low'), plain };
}

function meta(name: string, type: TreeEntry['type'], size = 0): Omit<TreeEntry, 'chunks' | 'subtree'> {
  return { name: Buffer.from(name), type, mode: 0o644, uid: 0, gid: 0, mtime: [1700000000, 0], ctime: [1700000000, 0], ino: 1, dev: 1, nlink: 1, size };
}

/**
 * A real two-level tree:
 *   root/  a.txt (2 chunks)  sub/  c.bin (2 chunks, one shared with a.txt)
 */
function twoLevelTree() {
  const a1 = dataBlob('a1');
  const a2 = dataBlob('z-a2', 5000);
  const c1 = dataBlob('c1', 7000);
  const subB = new TreeBuilder();
  subB.addFile(meta('c.bin', 'file', 7000 + 5000), [c1.id, a2.id]);
  const s = subB.build();
  const sub = sealTree(keys, salt, s.edges, s.payload, 'medium');
  const rootB = new TreeBuilder();
  rootB.addFile(meta('a.txt', 'file', 3000 + 5000), [a1.id, a2.id]);
  rootB.addDir(meta('sub', 'dir'), sub.id);
  const r = rootB.build();
  const root = sealTree(keys, salt, r.edges, r.payload, 'medium');
  return {
    data: [a1, a2, c1],
    sub: { id: sub.id, stored: sub.bytes, plain: s.payload } as Blob,
    root: { id: root.id, stored: root.bytes, plain: r.payload } as Blob,
  };
}

function snapshot(root: Id, time: string, extra: Partial<NewSnapshot> = {}): NewSnapshot {
  return { source: '/home/test', host: 'host-a', time, root: toHex(root), tags: [], stats: emptyStats(), ...extra };
}

function recordOf(repo: Repository, id: Id) {
  const r = repo.lookup(id);
  if (!r) return undefined;
  return { pack: r.pack, offset: r.offset, length: r.length, hash: toHex(r.hash), type: r.type };
}

describe('Repository', () => {
  let t: ReturnType<typeof tempDir>;
  let repo: Repository | undefined;
  let clock: ManualClock;

  beforeEach(async () => {
    t = tempDir('repo');
    clock = new ManualClock(Date.parse('2026-03-05T00:00:00Z'));
    repo = await Repository.init(t.dir, { clock });
  });
  afterEach(async () => {
    await repo?.close();
    repo = undefined;
    t.cleanup();
  });

  const r = () => repo!;
  async function reopen(before?: () => void): Promise<Repository> {
    await repo!.close();
    repo = undefined;
    before?.();
    repo = await Repository.open(t.dir, { clock });
    return repo;
  }
  async function store(blobs: Blob[]): Promise<void> {
    const w = r().openWriter();
    for (const b of blobs) await w.add(b.id, b.stored);
    await w.flush();
  }
  function packFiles(): string[] {
    const out: string[] = [];
    const dir = path.join(t.dir, 'packs');
    for (const sub of fs.readdirSync(dir)) for (const n of fs.readdirSync(path.join(dir, sub))) out.push(path.join(dir, sub, n));
    return out;
  }

  describe('blob index records', () => {
    it('encode and decode round-trip, with and without an owner and a complete mark; only a 16-byte hash prefix is kept', () => {
      const hash = crypto.randomBytes(32);
      const base = { pack: 'ab'.repeat(16), offset: 4_000_000_000, length: 123_456, hash: hash.subarray(0, 16), type: BlobType.Tree, seen: 1_795_441_107_289 };
      for (const [rec, size] of [
        [base, 48],
        [{ ...base, complete: 7 }, 52],
        [{ ...base, owner: 3 }, 52],
        [{ ...base, owner: 0xfffffffe, complete: 9 }, 56],
        [{ ...base, type: BlobType.Data, offset: 0 }, 48],
      ] as const) {
        const b = encodeBlobRecord(rec);
        expect(b.length).toBe(size);
        expect(decodeBlobRecord(b)).toEqual(rec);
      }
      // a whole storage hash is cut to its prefix
      expect(decodeBlobRecord(encodeBlobRecord({ ...base, hash })).hash.equals(hash.subarray(0, 16))).toBe(true);
      expect(() => encodeBlobRecord({ ...base, pack: 'not-hex' })).toThrow(/32 hex/);
      expect(() => encodeBlobRecord({ ...base, offset: 2 ** 32 })).toThrow(/does not fit/);
      expect(() => encodeBlobRecord({ ...base, hash: hash.subarray(0, 8) })).toThrow(/too short/);
      expect(() => decodeBlobRecord(Buffer.alloc(10))).toThrow(/too short/);
      expect(() => decodeBlobRecord(Buffer.from([2, ...Buffer.alloc(49)]))).toThrow(/too short/); // owner flagged, no room for it
    });

    /** Rewrite the index's blob table the way an earlier version kept it, then reopen: every blob must come back. */
    async function migratesFrom(table: 'blobs' | 'blobs-v2', encode: (r: ReturnType<typeof decodeBlobRecord>) => unknown): Promise<void> {
      const { data, sub, root } = twoLevelTree();
      await store([...data, sub, root]);
      const all = [...data, sub, root];
      const before = all.map((b) => recordOf(r(), b.id));
      await repo!.close();
      repo = undefined;
      const env = openLmdb({ path: path.join(t.dir, 'index.mdb'), noSubdir: true, compression: false });
      const current = env.openDB<Buffer, Buffer>({ name: 'blobs-v3', keyEncoding: 'binary', encoding: 'binary' });
      const old = env.openDB({ name: table, keyEncoding: 'binary', ...(table === 'blobs-v2' ? { encoding: 'binary' as const } : {}) });
      await env.transaction(() => {
        for (const { key, value } of current.getRange()) old.put(key, encode(decodeBlobRecord(value)));
        current.clearSync();
      });
      expect(old.getCount()).toBe(all.length);
      await env.close();
      repo = await Repository.open(t.dir, { clock });
      expect(all.map((b) => recordOf(r(), b.id))).toEqual(before);
      for (const b of all) expect((await r().readBlob(b.id)).equals(b.stored)).toBe(true);
      expect(r().blobCount()).toBe(all.length);
      // the old table is empty now: a second open has nothing to migrate
      await reopen();
      expect(r().blobCount()).toBe(all.length);
    }

    it('an index holding the older msgpack records is migrated on open, blob for blob', async () => {
      await migratesFrom('blobs', (rec) => rec);
    });

    it('an index holding the 66-byte v2 records is migrated on open, blob for blob', async () => {
      await migratesFrom('blobs-v2', (rec) => {
        const b = Buffer.alloc(rec.complete !== undefined ? 70 : 66);
        b[0] = rec.complete !== undefined ? 1 : 0;
        b[1] = rec.type;
        b.write(rec.pack, 2, 16, 'hex');
        b.writeUInt32BE(rec.offset, 18);
        b.writeUInt32BE(rec.length, 22);
        rec.hash.copy(b, 26); // v2 kept 32 bytes; the first 16 are what v3 keeps
        b.writeDoubleBE(rec.seen, 58);
        if (rec.complete !== undefined) b.writeUInt32BE(rec.complete, 66);
        return b;
      });
    });
  });

  describe('init and open', () => {
    it('creates the layout and a config; refuses a second init; open reads it back', async () => {
      for (const d of ['packs', 'tmp', 'snapshots', 'keys']) expect(fs.statSync(path.join(t.dir, d)).isDirectory()).toBe(true);
      const cfg = JSON.parse(fs.readFileSync(path.join(t.dir, 'config.json'), 'utf8'));
      expect(cfg).toMatchObject({ format: 'keep-repository', version: 1, chunker: DEFAULT_CHUNKER, created: '2026-03-05T00:00:00.000Z' });
      expect(cfg.id).toMatch(/^[0-9a-f]{32}$/);
      expect(fs.existsSync(path.join(t.dir, 'index.mdb'))).toBe(true);
      expect(Repository.exists(t.dir)).toBe(true);
      await expectKeepError(() => Repository.init(t.dir), 'ALREADY_EXISTS');
      const again = await reopen();
      expect(again.config).toEqual(cfg);
      expect(again.blobCount()).toBe(0);
      expect(again.snapshots()).toEqual([]);
    });

    it('keeps custom chunker sizes; rejects non-repositories and future versions', async () => {
      const other = tempDir('repo-other');
      try {
        const chunker = { min: 4096, avg: 16384, max: 65536 };
        const o = await Repository.init(path.join(other.dir, 'r'), { chunker });
        await o.close();
        const o2 = await Repository.open(path.join(other.dir, 'r'));
        // New repositories cut with a keyed gear table (chunker.ts) unless told otherwise.
        expect(o2.config.chunker).toEqual({ ...chunker, keyed: true });
        await o2.close();

        await expectKeepError(() => Repository.open(path.join(other.dir, 'nothing-here')), 'NOT_A_REPOSITORY');
        await expectKeepError(() => Repository.init(path.join(other.dir, 'bad'), { chunker: { min: 1, avg: 2, max: 3 } }), 'INVALID_ARGUMENT');
        const cfgFile = path.join(other.dir, 'r', 'config.json');
        const cfg = JSON.parse(fs.readFileSync(cfgFile, 'utf8'));
        fs.writeFileSync(cfgFile, JSON.stringify({ ...cfg, version: 2 }));
        await expectKeepError(() => Repository.open(path.join(other.dir, 'r')), 'NOT_A_REPOSITORY');
        fs.writeFileSync(cfgFile, '{ not json');
        await expectKeepError(() => Repository.open(path.join(other.dir, 'r')), 'CORRUPT');
      } finally {
        other.cleanup();
      }
    });
  });

  describe('blobs', () => {
    it('add + flush, then lookup and readBlob give the stored bytes back', async () => {
      const { data, sub, root } = twoLevelTree();
      const all = [...data, sub, root];
      const w = r().openWriter();
      for (const b of all) expect(await w.add(b.id, b.stored)).toBe(true);
      // Nothing is visible before the pack is durable.
      expect(all.some((b) => r().has(b.id))).toBe(false);
      expect(r().blobCount()).toBe(0);
      await w.flush();
      expect(r().blobCount()).toBe(all.length);
      expect(r().packCount()).toBe(1);
      expect(w.blobsStored).toBe(all.length);
      expect(w.bytesStored).toBe(all.reduce((s, b) => s + b.stored.length, 0));
      for (const b of all) {
        const rec = r().lookup(b.id)!;
        expect(rec).toBeDefined();
        expect(rec.type).toBe(b === sub || b === root ? BlobType.Tree : BlobType.Data);
        expect(rec.length).toBe(b.stored.length);
        expect(rec.hash.equals(storageHash(b.stored).subarray(0, 16))).toBe(true); // the index keeps a 16-byte prefix
        expect(rec.seen).toBe(clock.now());
        const got = await r().readBlob(b.id);
        expect(got.equals(b.stored)).toBe(true);
        expect(openBlob(keys, b.id, got).plaintext.equals(b.plain)).toBe(true);
      }
      const node = decodeTreePayload(openBlob(keys, root.id, await r().readBlob(root.id)).plaintext, openBlob(keys, root.id, root.stored).edges);
      expect(node.entries.map((e) => e.name.toString())).toEqual(['a.txt', 'sub']);
      await expectKeepError(() => r().readBlob(dataBlob('never stored').id), 'NOT_FOUND');
      expect([...r().allBlobs()].map(([id]) => toHex(id)).sort()).toEqual(all.map((b) => toHex(b.id)).sort());
    });

    it('dedup on arrival: the same id is stored once, in the same writer and across writers', async () => {
      const b = dataBlob('dedup', 10_000);
      const w = r().openWriter();
      expect(await w.add(b.id, b.stored)).toBe(true);
      expect(await w.add(b.id, b.stored)).toBe(false); // pending in the open pack
      await w.flush();
      expect(await w.add(b.id, b.stored)).toBe(false); // indexed now
      await w.flush();
      const w2 = r().openWriter();
      expect(await w2.add(b.id, sealData(keys, salt, b.id, b.plain, 'none'))).toBe(false);
      await w2.flush();
      expect(r().blobCount()).toBe(1);
      expect(r().packCount()).toBe(1);
      expect(packFiles()).toHaveLength(1);
      expect(w.blobsStored).toBe(1);
      expect(w2.blobsStored).toBe(0);
      // Exactly one copy of the stored bytes on disk.
      const pack = fs.readFileSync(packFiles()[0]);
      expect(pack.indexOf(b.stored)).toBeGreaterThan(0);
      expect(pack.indexOf(b.stored, pack.indexOf(b.stored) + 1)).toBe(-1);
    });

    it('two writers racing on one blob: both packs land, the first indexed copy wins and reads back', async () => {
      const b = dataBlob('race', 4000);
      const w1 = r().openWriter();
      const w2 = r().openWriter();
      expect(await w1.add(b.id, b.stored)).toBe(true);
      expect(await w2.add(b.id, b.stored)).toBe(true); // not yet indexed by w1
      await w1.flush();
      const first = r().lookup(b.id)!.pack;
      await w2.flush();
      expect(r().lookup(b.id)!.pack).toBe(first);
      expect(r().packCount()).toBe(2);
      expect(r().blobCount()).toBe(1);
      expect((await r().readBlob(b.id)).equals(b.stored)).toBe(true);
    });

    it('refuses a blob whose bytes do not match the expected storage hash, and an unparsable blob', async () => {
      const b = dataBlob('expect');
      const w = r().openWriter();
      const bad = Buffer.from(b.stored);
      bad[100] ^= 1;
      expect((await expectKeepError(() => w.add(b.id, bad, storageHash(b.stored)), 'CORRUPT')).message).toContain(toHex(b.id));
      await expectKeepError(() => w.add(b.id, Buffer.alloc(10)), 'CORRUPT');
      expect(await w.add(b.id, b.stored, storageHash(b.stored))).toBe(true);
      await w.flush();
      expect(r().blobCount()).toBe(1);
    });

    it('a writer rolls over to a new pack at the target size', async () => {
      const w = r().openWriter();
      const blobs: Blob[] = [];
      let total = 0;
      for (let i = 0; total < PACK_TARGET_SIZE + 4 * 1024 * 1024; i++) {
        const b = dataBlob(`big-${i}`, 2 * 1024 * 1024);
        blobs.push(b);
        total += b.stored.length;
        await w.add(b.id, b.stored);
      }
      // The first pack was closed into packs/ without an explicit flush; it is indexed behind the adds.
      expect(packFiles()).toHaveLength(1);
      expect(r().blobCount()).toBeLessThan(blobs.length);
      // a blob of the pack being indexed is not stored twice
      expect(await w.add(blobs[0].id, blobs[0].stored)).toBe(false);
      await w.flush();
      expect(r().packCount()).toBe(2);
      expect(r().blobCount()).toBe(blobs.length);
      for (const p of packFiles()) expect(fs.statSync(p).size).toBeLessThan(PACK_TARGET_SIZE + 3 * 1024 * 1024);
      for (const b of [blobs[0], blobs[blobs.length - 1]]) expect((await r().readBlob(b.id)).equals(b.stored)).toBe(true);
    });

    it('the index file stays near its live size while thousands of blobs arrive in big packs', async () => {
      // Packs of 1000 blobs, as a backup of small files makes them: one transaction per pack would
      // rewrite nearly every leaf each time and leave the file at 2-2.5x its live pages.
      const w = r().openWriter({ owner: 1 });
      for (let i = 0; i < 5000; i++) {
        const b = dataBlob(`n-${i}`, 64);
        await w.add(b.id, b.stored);
        if (i % 1000 === 999) await w.flush();
      }
      await w.flush();
      expect(r().blobCount()).toBe(5000);
      await repo!.close();
      repo = undefined;
      const file = path.join(t.dir, 'index.mdb');
      const live = path.join(t.dir, 'compacted.mdb');
      const env = openLmdb({ path: file, noSubdir: true, compression: false });
      await env.backup(live, true); // LMDB's compacting copy: the live pages alone
      await env.close();
      expect(fs.statSync(file).size / fs.statSync(live).size).toBeLessThan(1.6);
    });

    it('pack usage for prune leaves out packs recorded since a time: one may still be being indexed', async () => {
      await store([dataBlob('u-old')]);
      const since = clock.now() + 1;
      clock.advance(60_000);
      await store([dataBlob('u-young')]);
      const all = r().packUsage();
      expect(all.size).toBe(2);
      const old = r().packUsage({ createdBefore: since });
      expect(old.size).toBe(1);
      expect([...old.values()][0].liveBlobs).toBe(1);
      expect(r().packUsage({ createdBefore: clock.now() + 1 }).size).toBe(2);
    });

    it('missing() lists what is absent, in order, and renews seen on what is present', async () => {
      const [a, b, c] = [dataBlob('m-a'), dataBlob('m-b'), dataBlob('m-c')];
      await store([a, c]);
      const storedAt = clock.now();
      clock.advance(60_000);
      const lacking = await r().missing([a.id, b.id, c.id, dataBlob('m-d').id]);
      expect(lacking.map(toHex)).toEqual([b.id, dataBlob('m-d').id].map(toHex));
      expect(r().lookup(a.id)!.seen).toBe(storedAt + 60_000);
      expect(r().lookup(c.id)!.seen).toBe(storedAt + 60_000);
      expect(await r().missing([])).toEqual([]);
      // A clock that went backwards never lowers seen.
      clock.set(storedAt);
      await r().missing([a.id]);
      expect(r().lookup(a.id)!.seen).toBe(storedAt + 60_000);
    });
  });

  describe('snapshots', () => {
    it('commitSnapshot refuses while any blob reachable from the root is absent, and accepts once all are stored', async () => {
      const { data, sub, root } = twoLevelTree();
      const s = snapshot(root.id, '2026-03-01T10:00:00.000Z');

      let e = await expectKeepError(() => r().commitSnapshot(s), 'INCOMPLETE');
      expect(e.message).toContain(toHex(root.id));

      await store([root]);
      e = await expectKeepError(() => r().commitSnapshot(s), 'INCOMPLETE');
      // Root's own edges: a1, a2 and sub are all absent.
      expect(e.message).toMatch(/3 blob\(s\)/);

      await store([sub, data[0], data[1]]);
      e = await expectKeepError(() => r().commitSnapshot(s), 'INCOMPLETE');
      // Only c1, reachable through sub, is absent.
      expect(e.message).toMatch(/1 blob\(s\)/);
      expect(e.message).toContain(toHex(data[2].id));
      expect((await r().closure(root.id)).missing).toEqual([toHex(data[2].id)]);

      // Added but not flushed is not stored.
      const w = r().openWriter();
      await w.add(data[2].id, data[2].stored);
      await expectKeepError(() => r().commitSnapshot(s), 'INCOMPLETE');
      expect(r().snapshots()).toEqual([]);
      expect(fs.readdirSync(path.join(t.dir, 'snapshots'))).toEqual([]);
      await w.flush();

      const snap = await r().commitSnapshot(s);
      expect(snap.id).toMatch(/^[0-9a-f]{32}$/);
      expect(snap).toMatchObject(s);
      expect(r().snapshots()).toEqual([snap]);
      expect(r().getSnapshot(snap.id)).toEqual(snap);
      expect(JSON.parse(fs.readFileSync(path.join(t.dir, 'snapshots', `${snap.id}.json`), 'utf8'))).toEqual(snap);
      // Both trees are now known complete, so the next commit does not walk them.
      expect(r().isComplete(root.id)).toBe(true);
      expect(r().isComplete(sub.id)).toBe(true);
      expect(await r().closure(root.id)).toEqual({ missing: [], trees: [] });
      const check = await r().check({ readData: true });
      expect(check.ok, check.errors.join('\n')).toBe(true);
      expect(check.snapshots).toBe(1);
    });

    it("commitSnapshot keeps the writer's id (refusing a taken one), records its own clock as server_time, refuses a time ahead of it", async () => {
      const { data, sub, root } = twoLevelTree();
      await store([root, sub, ...data]);
      const s = { ...snapshot(root.id, '2026-03-04T23:58:00.000Z'), id: 'ab'.repeat(16), mac: 'cd'.repeat(32) };
      const snap = await r().commitSnapshot(s);
      expect(snap).toMatchObject({ ...s, server_time: '2026-03-05T00:00:00.000Z' });
      expect(JSON.parse(fs.readFileSync(path.join(t.dir, 'snapshots', `${s.id}.json`), 'utf8'))).toEqual(snap);
      expect((await expectKeepError(() => r().commitSnapshot({ ...s, source: '/other' }), 'ALREADY_EXISTS')).message).toMatch(/exists/);
      await expectKeepError(() => r().commitSnapshot({ ...s, id: 'not-hex' }), 'INVALID_ARGUMENT');
      const ahead = await expectKeepError(() => r().commitSnapshot(snapshot(root.id, '2026-03-05T00:06:00.000Z')), 'INVALID_ARGUMENT');
      expect(ahead.message).toMatch(/your clock is 360 s ahead/);
      await expectKeepError(() => r().commitSnapshot(snapshot(root.id, '2026-03-04T23:50:00.000Z'), { started: clock.now() }), 'INVALID_ARGUMENT');
      expect(r().snapshots().map((x) => x.id)).toEqual([s.id]);
    });

    it('a second snapshot sharing a complete subtree only needs its new blobs', async () => {
      const { data, sub, root } = twoLevelTree();
      await store([...data, sub, root]);
      await r().commitSnapshot(snapshot(root.id, '2026-03-01T10:00:00.000Z'));
      const extra = dataBlob('new-file');
      const b = new TreeBuilder();
      b.addFile(meta('new.txt', 'file', 3000), [extra.id]);
      b.addDir(meta('sub', 'dir'), sub.id);
      const built = b.build();
      const root2 = sealTree(keys, salt, built.edges, built.payload, 'low');
      await store([{ id: root2.id, stored: root2.bytes, plain: built.payload }]);
      const e = await expectKeepError(() => r().commitSnapshot(snapshot(root2.id, '2026-03-01T11:00:00.000Z')), 'INCOMPLETE');
      expect(e.message).toContain(toHex(extra.id));
      await store([extra]);
      const snap2 = await r().commitSnapshot(snapshot(root2.id, '2026-03-01T11:00:00.000Z'));
      expect(r().snapshots().map((s) => s.id)).toContain(snap2.id);
    });

    it('refuses a root that is not a tree or not a hex id', async () => {
      const d = dataBlob('root-is-data');
      await store([d]);
      await expectKeepError(() => r().commitSnapshot(snapshot(d.id, '2026-03-01T10:00:00.000Z')), 'CORRUPT');
      await expectKeepError(() => r().commitSnapshot({ ...snapshot(d.id, '2026-03-01T10:00:00.000Z'), root: 'abcd' }), 'INVALID_ARGUMENT');
      expect(r().snapshots()).toEqual([]);
    });

    it('snapshots are listed oldest first, whatever the commit order, and filter by source and host', async () => {
      const { data, sub, root } = twoLevelTree();
      await store([...data, sub, root]);
      const times = ['2026-03-03T00:00:00.000Z', '2026-03-01T00:00:00.000Z', '2026-03-04T00:00:00.000Z', '2026-03-02T00:00:00.000Z'];
      const made = [];
      for (const [i, time] of times.entries()) made.push(await r().commitSnapshot(snapshot(root.id, time, { host: i % 2 ? 'host-b' : 'host-a', source: i < 2 ? '/src1' : '/src2' })));
      expect(r().snapshots().map((s) => s.time)).toEqual([...times].sort());
      expect(r().snapshots({ host: 'host-b' }).map((s) => s.time)).toEqual(['2026-03-01T00:00:00.000Z', '2026-03-02T00:00:00.000Z']);
      expect(r().snapshots({ source: '/src1' }).map((s) => s.time)).toEqual(['2026-03-01T00:00:00.000Z', '2026-03-03T00:00:00.000Z']);
      expect(r().snapshots({ source: '/src2', host: 'host-a' }).map((s) => s.id)).toEqual([made[2].id]);
      // Order survives a reopen.
      await reopen();
      expect(r().snapshots().map((s) => s.time)).toEqual([...times].sort());
    });

    it('reopen adopts snapshot files that LMDB never learned of, and drops records whose file is gone', async () => {
      const { data, sub, root } = twoLevelTree();
      await store([...data, sub, root]);
      const s1 = await r().commitSnapshot(snapshot(root.id, '2026-03-01T10:00:00.000Z'));
      const s2 = await r().commitSnapshot(snapshot(root.id, '2026-03-01T11:00:00.000Z'));
      // A crash after the snapshot file but before LMDB: a file only.
      const orphan = { ...s1, id: 'ab'.repeat(16), time: '2026-03-01T12:00:00.000Z' };
      fs.writeFileSync(path.join(t.dir, 'snapshots', `${orphan.id}.json`), JSON.stringify(orphan) + '\n');
      await reopen();
      expect(r().snapshots().map((s) => s.id)).toEqual([s1.id, s2.id, orphan.id]);
      fs.rmSync(path.join(t.dir, 'snapshots', `${s1.id}.json`));
      await reopen();
      expect(r().snapshots().map((s) => s.id)).toEqual([s2.id, orphan.id]);
    });
  });

  describe('tree nodes', () => {
    it('a builder sorts and renumbers in place: built again or added to, each entry indexes its own edges; findEntry bisects by name', () => {
      const [x, y, z] = ['x', 'y', 'z'].map((s) => dataBlob(s).id);
      const b = new TreeBuilder();
      b.addFile(meta('m.txt', 'file', 2), [y, z]);
      b.addDir(meta('d', 'dir'), x);
      b.addFile(meta('a.txt', 'file', 1), [x]);
      const first = b.build();
      expect(first.entries.map((e) => e.name.toString())).toEqual(['a.txt', 'd', 'm.txt']);
      expect(b.build().payload.equals(first.payload)).toBe(true);
      b.addFile(meta('b.txt', 'file', 1), [z]);
      const again = b.build();
      const node = decodeTreePayload(again.payload, again.edges);
      const ids = (name: string) => {
        const e = findEntry(node, Buffer.from(name))!;
        return (e.chunks ? fileChunks(node, e) : [node.edges[e.subtree!].id]).map(toHex);
      };
      expect(ids('a.txt')).toEqual([toHex(x)]);
      expect(ids('b.txt')).toEqual([toHex(z)]);
      expect(ids('d')).toEqual([toHex(x)]);
      expect(ids('m.txt')).toEqual([y, z].map(toHex));
      expect(findEntry(node, Buffer.from('c'))).toBeUndefined();
      expect(findEntry(undefined, Buffer.from('a.txt'))).toBeUndefined();
    });
  });

  describe('index rebuild', () => {
    it('deleting index.mdb: open() rebuilds every blob and snapshot from packs and snapshot files', async () => {
      const { data, sub, root } = twoLevelTree();
      const more = Array.from({ length: 10 }, (_, i) => dataBlob(`rebuild-${i}`, 1000 + i * 100));
      await store([...data, sub]);
      await store([root, ...more]);
      const all = [...data, sub, root, ...more];
      const s1 = await r().commitSnapshot(snapshot(root.id, '2026-03-01T10:00:00.000Z', { tags: ['x'] }));
      const s2 = await r().commitSnapshot(snapshot(root.id, '2026-03-02T10:00:00.000Z'));
      const before = new Map(all.map((b) => [toHex(b.id), recordOf(r(), b.id)]));
      expect(r().packCount()).toBe(2);

      await reopen(() => {
        fs.rmSync(path.join(t.dir, 'index.mdb'));
        fs.rmSync(path.join(t.dir, 'index.mdb-lock'), { force: true });
      });
      expect(r().blobCount()).toBe(all.length);
      expect(r().packCount()).toBe(2);
      for (const b of all) {
        expect(recordOf(r(), b.id)).toEqual(before.get(toHex(b.id)));
        expect((await r().readBlob(b.id)).equals(b.stored)).toBe(true);
      }
      expect(r().snapshots()).toEqual([s1, s2]);
      // Trees lost their "complete" mark but are stored: a commit still succeeds.
      expect(r().isComplete(root.id)).toBe(false);
      await r().commitSnapshot(snapshot(root.id, '2026-03-03T10:00:00.000Z'));
      const rep = await r().check({ readData: true });
      expect(rep.ok, rep.errors.join('\n')).toBe(true);
      expect(rep.blobs).toBe(all.length);
    });

    it('rebuildIndex() on an open repository gives the same index and reports damaged packs', async () => {
      const { data, sub, root } = twoLevelTree();
      await store([...data]);
      await store([sub, root]);
      await r().commitSnapshot(snapshot(root.id, '2026-03-01T10:00:00.000Z'));
      const all = [...data, sub, root];
      const before = all.map((b) => recordOf(r(), b.id));
      const res = await r().rebuildIndex();
      // The commit wrote an index segment (index/segment-format.ts): no pack's trailer is read.
      expect(res).toEqual({ packs: 2, blobs: all.length, damaged_packs: [], segments: 1, damaged_segments: [], packs_from_segments: 2, packs_from_trailers: 0, store_requests: {}, replaced: expect.stringMatching(/^index\.mdb\.old-/) });
      // Built aside and swapped in: the replaced file is kept next to it, no rebuild leftovers.
      expect(fs.existsSync(path.join(t.dir, res.replaced!))).toBe(true);
      expect(fs.existsSync(path.join(t.dir, 'index.mdb.rebuild'))).toBe(false);
      expect(all.map((b) => recordOf(r(), b.id))).toEqual(before);
      expect(r().snapshots()).toHaveLength(1);

      // Truncate the pack holding the trees: rebuild skips it and says why.
      const treePack = r().lookup(root.id)!.pack;
      const file = packPath(r().packsDir, treePack);
      fs.truncateSync(file, fs.statSync(file).size - 10);
      const res2 = await r().rebuildIndex();
      expect(res2.packs).toBe(1);
      expect(res2.blobs).toBe(data.length);
      expect(res2.damaged_packs).toHaveLength(1);
      expect(res2.damaged_packs[0]).toContain(treePack);
      expect(res2.damaged_packs[0]).toMatch(/truncated/);
      expect(res2.packs_from_segments).toBe(1); // the segment records the pack's size: a truncated one is read by its trailer
      expect(r().has(root.id)).toBe(false);
      expect(r().has(data[0].id)).toBe(true);
    });

    it('an unfinished pack (a writer that never finished: a crash) is never indexed', async () => {
      const kept = dataBlob('kept');
      await store([kept]);
      // as large as a whole append: in the file at once (smaller blobs are gathered first)
      const lost = dataBlob('lost-in-crash', PACK_APPEND_BYTES);
      const w = r().openWriter();
      expect(await w.add(lost.id, lost.stored)).toBe(true);
      // "Crash": no flush, no abandon.
      const tmpFiles = fs.readdirSync(path.join(t.dir, 'tmp'));
      expect(tmpFiles).toHaveLength(1);
      expect(tmpFiles[0]).toMatch(/\.pack\.tmp$/);
      expect(fs.statSync(path.join(t.dir, 'tmp', tmpFiles[0])).size).toBeGreaterThan(lost.stored.length);

      await reopen();
      expect(r().has(lost.id)).toBe(false);
      expect(r().has(kept.id)).toBe(true);
      expect(await r().missing([lost.id])).toHaveLength(1);
      let rep = await r().check({ readData: true });
      expect(rep.unfinished_packs).toBe(1);
      expect(rep.ok, rep.errors.join('\n')).toBe(true);

      // Not after a rebuild from scratch either.
      await reopen(() => fs.rmSync(path.join(t.dir, 'index.mdb')));
      expect(r().has(lost.id)).toBe(false);
      expect(r().blobCount()).toBe(1);
      rep = await r().rebuildIndex().then(() => r().check());
      expect(rep.unfinished_packs).toBe(1);
      expect(rep.packs).toBe(1);

      // Storing it again works normally.
      await store([lost]);
      expect((await r().readBlob(lost.id)).equals(lost.stored)).toBe(true);
    });
  });

  describe('check', () => {
    it('reports ok on a healthy repository, having read every blob', async () => {
      const { data, sub, root } = twoLevelTree();
      const all = [...data, sub, root];
      await store(all);
      await r().commitSnapshot(snapshot(root.id, '2026-03-01T10:00:00.000Z'));
      const rep = await r().check({ readData: true });
      expect(rep).toMatchObject({ ok: true, snapshots: 1, packs: 1, blobs: all.length, blobs_read: all.length, errors: [], damaged_blobs: [], orphan_packs: [], unfinished_packs: 0 });
      expect(rep.bytes_read).toBe(all.reduce((s, b) => s + b.stored.length, 0));
      const quick = await r().check();
      expect(quick.ok).toBe(true);
      expect(quick.blobs_read).toBe(0);
    });

    it('names the damaged blob (hex) after a byte flips inside it in its pack', async () => {
      const { data, sub, root } = twoLevelTree();
      const all = [...data, sub, root];
      await store(all);
      await r().commitSnapshot(snapshot(root.id, '2026-03-01T10:00:00.000Z'));
      const victim = data[2];
      const rec = r().lookup(victim.id)!;
      flipByteInFile(packPath(r().packsDir, rec.pack), rec.offset + 200);

      const rep = await r().check({ readData: true });
      expect(rep.ok).toBe(false);
      expect(rep.damaged_blobs).toEqual([toHex(victim.id)]);
      expect(rep.errors.join('\n')).toContain(toHex(victim.id));
      expect(rep.blobs_read).toBe(all.length - 1);
      // The pack's trailer is intact: no pack-level error.
      expect(rep.errors.some((m) => m.startsWith('pack '))).toBe(false);
      // readBlob agrees.
      await expectKeepError(() => r().readBlob(victim.id), 'CORRUPT');

      // Damage to a tree blob also breaks the snapshot's walk.
      const trec = r().lookup(sub.id)!;
      flipByteInFile(packPath(r().packsDir, trec.pack), trec.offset + 40);
      await r().rebuildIndex(); // forget "complete" so the snapshot's DAG is walked again
      const rep2 = await r().check({ readData: true });
      expect(rep2.damaged_blobs.sort()).toEqual([toHex(victim.id), toHex(sub.id)].sort());
      expect(rep2.errors.some((m) => m.includes('snapshot'))).toBe(true);
    });

    it('reports a truncated pack and the blobs it lost', async () => {
      const blobs = Array.from({ length: 5 }, (_, i) => dataBlob(`trunc-${i}`, 4000));
      await store(blobs);
      const rec = r().lookup(blobs[3].id)!;
      const file = packPath(r().packsDir, rec.pack);
      fs.truncateSync(file, rec.offset + 10);
      const rep = await r().check({ readData: true });
      expect(rep.ok).toBe(false);
      expect(rep.errors.some((m) => m.includes(rec.pack) && /truncated/.test(m))).toBe(true);
      expect(rep.damaged_blobs.sort()).toEqual([blobs[3].id, blobs[4].id].map(toHex).sort());
      expect(rep.blobs_read).toBe(3);
    });

    it('reports a missing pack, an orphan pack, and blobs missing under a snapshot', async () => {
      const { data, sub, root } = twoLevelTree();
      await store([root, sub]);
      await store(data);
      await r().commitSnapshot(snapshot(root.id, '2026-03-01T10:00:00.000Z'));
      const dataPack = r().lookup(data[0].id)!.pack;
      fs.rmSync(packPath(r().packsDir, dataPack));

      // A pack written behind the index's back (e.g. copied in): an orphan.
      const w = new PackWriter(path.join(t.dir, 'tmp'), r().packsDir);
      const stray = dataBlob('stray');
      w.add(stray.id, BlobType.Data, stray.stored);
      const orphan = w.finish();

      const rep = await r().check({ readData: true });
      expect(rep.ok).toBe(false);
      expect(rep.orphan_packs).toEqual([orphan.id]);
      expect(rep.damaged_blobs.sort()).toEqual(data.map((b) => toHex(b.id)).sort());
      expect(rep.errors.some((m) => m.includes(dataPack) && /missing/.test(m))).toBe(true);

      // After a rebuild the index matches the disk: the data blobs are gone, so the snapshot's DAG is incomplete.
      await r().rebuildIndex();
      expect(r().has(stray.id)).toBe(true);
      const rep2 = await r().check();
      expect(rep2.orphan_packs).toEqual([]);
      expect(rep2.ok).toBe(false);
      expect(rep2.damaged_blobs.sort()).toEqual(data.map((b) => toHex(b.id)).sort());
      expect(rep2.errors.every((m) => m.startsWith('snapshot '))).toBe(true);
    });
  });
});
