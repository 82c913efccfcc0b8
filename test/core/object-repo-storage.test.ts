/**
 * A repository kept in an object store (packages/core/src/store/object-repo-storage.ts),
 * with a LocalDirectoryStore standing in for the bucket: the same code path keepd
 * takes on S3 (test/keepd-object-storage.test.ts runs it on a real Ceph RGW), fast
 * enough for every run. Packs, snapshot records, key files and the config go to the
 * store; the data directory keeps the index; a lost writer lease stops writes.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chunkId, deriveKeys, emptyStats, ManualClock, newMasterKey, openBlob, Repository, sealData, sealTree, toHex, TreeBuilder, useObjectStorage, wrapMasterKey, writeStorageRecord } from '@keep/core';
import { LocalDirectoryStore, MeteredStore, ObjectRepoStorage, listAll, STORE_OPS } from '@keep/core/store';
import { expectKeepError, seededBytes, tempDir } from './util.js';

const keys = deriveKeys(newMasterKey());
const salt = crypto.randomBytes(16);
/** scrypt's cheapest accepted cost: these tests are about storage */
const KEY_META = { host: 'h', username: 'u', created: new Date(0), scrypt: { N: 1024, r: 8, p: 1 } };

describe('a repository in an object store', () => {
  let t: ReturnType<typeof tempDir>;
  let bucketDir: string;
  let data: string;
  let meter: MeteredStore;

  beforeAll(() => {
    t = tempDir('object-repo');
    bucketDir = path.join(t.dir, 'bucket');
    data = path.join(t.dir, 'data');
    // the "bucket" is a directory; everything else is the S3 path
    useObjectStorage(async (dir) => {
      meter = new MeteredStore(new LocalDirectoryStore(bucketDir));
      const m = meter;
      return new ObjectRepoStorage(m, path.join(dir, 'tmp'), () => m.stats());
    });
    writeStorageRecord(data, { v: 1, url: 's3://test-bucket/repo' });
  });
  afterAll(() => t.cleanup());

  const keysIn = async (prefix: string) => {
    const out: string[] = [];
    for await (const o of listAll(new LocalDirectoryStore(bucketDir), prefix)) out.push(o.key);
    return out;
  };

  it('keeps packs, snapshots, keys and config in the store; reads, checks and rebuilds from it', async () => {
    const clock = new ManualClock(Date.parse('2026-12-01T00:00:00Z'));
    const repo = await Repository.init(data, { clock });
    let root: Buffer;
    let blobs: { id: Buffer; plain: Buffer }[];
    try {
      expect(fs.readFileSync(path.join(bucketDir, 'config.json'), 'utf8')).toBe(fs.readFileSync(path.join(data, 'config.json'), 'utf8'));
      await repo.addKeyFile(wrapMasterKey(newMasterKey(), 'pw', KEY_META));
      expect(await keysIn('keys/')).toHaveLength(1);
      expect(repo.keyFiles()).toHaveLength(1);

      const w = repo.openWriter();
      blobs = [0, 1, 2].map((i) => {
        const plain = seededBytes(`obj-${i}`, 5000 + i);
        return { id: chunkId(keys, plain), plain };
      });
      for (const b of blobs) await w.add(b.id, sealData(keys, salt, b.id, b.plain, 'low'));
      const tb = new TreeBuilder();
      tb.addFile({ name: Buffer.from('f'), type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: [1, 0], ctime: [1, 0], ino: 1, dev: 1, nlink: 1, size: 15003 }, blobs.map((b) => b.id));
      const built = tb.build();
      const tree = sealTree(keys, salt, built.edges, built.payload, 'none');
      root = tree.id;
      await w.add(tree.id, tree.bytes);
      await w.flush();
      const snap = await repo.commitSnapshot({ source: 'files', host: 'h', time: new Date(clock.now()).toISOString(), root: toHex(root), tags: [], stats: emptyStats() });

      const packs = await keysIn('packs/');
      expect(packs).toHaveLength(1);
      expect(packs[0]).toMatch(/^packs\/[0-9a-f]{2}\/[0-9a-f]{32}\.pack$/);
      expect(await keysIn('snapshots/')).toEqual([`snapshots/${snap.id}.json`]);
      // nothing of the repository's objects in the data directory
      for (const sub of ['packs', 'snapshots', 'keys']) expect(fs.readdirSync(path.join(data, sub))).toEqual([]);
      for (const b of blobs) expect(openBlob(keys, b.id, await repo.readBlob(b.id)).plaintext.equals(b.plain)).toBe(true);
      const check = await repo.check({ readData: true });
      expect(check.ok, check.errors.join('\n')).toBe(true);
      expect(check.blobs_read).toBe(4);
      expect(repo.storedBytes()).toBe(fs.statSync(path.join(bucketDir, packs[0])).size);
      // the pack went up in one put; the reads were ranged gets
      const stats = Object.fromEntries(meter.stats().map((s) => [s.op, s]));
      expect(Object.keys(stats).sort()).toEqual([...STORE_OPS].sort());
      expect(stats.get.requests).toBeGreaterThan(0);
      expect(stats.put.bytes).toBeGreaterThan(fs.statSync(path.join(bucketDir, packs[0])).size);
    } finally {
      await repo.close();
    }

    // The local index goes; the rebuild reads the pack trailers and snapshot records in the store.
    for (const f of fs.readdirSync(data)) if (f.startsWith('index.mdb')) fs.rmSync(path.join(data, f));
    const report = await Repository.rebuild(data, { clock });
    expect(report).toMatchObject({ packs: 1, blobs: 4, damaged_packs: [] });
    await Repository.using(
      data,
      async (again) => {
        expect(again.snapshots()).toHaveLength(1);
        expect(again.keyFiles()).toHaveLength(1);
        for (const b of blobs) expect(openBlob(keys, b.id, await again.readBlob(b.id)).plaintext.equals(b.plain)).toBe(true);
      },
      { clock },
    );
  });

  it('a data directory whose config is not the store\'s is refused', async () => {
    const other = path.join(t.dir, 'other');
    fs.mkdirSync(other);
    writeStorageRecord(other, { v: 1, url: 's3://test-bucket/repo' });
    const cfg = JSON.parse(fs.readFileSync(path.join(data, 'config.json'), 'utf8'));
    fs.writeFileSync(path.join(other, 'config.json'), JSON.stringify({ ...cfg, id: crypto.randomBytes(16).toString('hex') }, null, 2) + '\n');
    const e = await expectKeepError(() => Repository.open(other), 'CORRUPT');
    expect(e.message).toMatch(/another repository/);
  });

  it('one writer: a second holder is refused; a writer whose lease was taken over stops writing', async () => {
    const clock = new ManualClock(Date.parse('2026-12-01T00:00:00Z'));
    // a second data directory on the same prefix (its index is rebuilt from the store on open)
    const second = path.join(t.dir, 'second');
    fs.mkdirSync(second);
    for (const f of ['config.json', 'store.json']) fs.copyFileSync(path.join(data, f), path.join(second, f));
    const a = await Repository.open(data, { clock });
    const b = await Repository.open(second, { clock });
    expect(b.snapshots()).toHaveLength(1);
    const key = wrapMasterKey(newMasterKey(), 'pw', KEY_META);
    try {
      const held = await a.holdWriter('keepd serve');
      // the same holder (one data directory on one host) takes its lease back at once: a restart after kill -9
      await a.holdWriter('keepd serve');
      expect((await expectKeepError(() => b.holdWriter('another keepd'), 'LOCKED')).message).toMatch(/written by another keepd \(keepd serve on /);
      // past its expiry the lease is taken over; the old holder learns at its next renewal and writes no more
      clock.advance(10 * 60 * 1000);
      const taken = await b.holdWriter('another keepd');
      await expectKeepError(() => held.renew(), 'LOCKED');
      await expectKeepError(() => a.addKeyFile(key), 'LOCKED');
      await b.addKeyFile(key);
      await taken.release();
    } finally {
      await a.close();
      await b.close();
    }
  });
});
