/**
 * One conformance suite for every ObjectStore (packages/core/src/store/):
 * the local directory, s3rver (fast, but it ignores If-None-Match/If-Match,
 * so the create-once and lease cases skip there) and a real Ceph RADOS
 * Gateway (test/rgw-harness.ts), where every case runs. Then the retries:
 * a fault-injecting wrapper (store-faults.ts) and a proxy that answers 503
 * SlowDown in front of a real S3 server.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { KeepError, ManualClock, packPath } from '@keep/core';
import { LocalDirectoryStore, type ObjectStore, RetryingStore, repoKeys, S3ObjectStore, StoreError, WriterLease, listAll } from '@keep/core/store';
import S3rver from 's3rver';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDirs } from './helpers.js';
import { freePort, type Rgw, rgwUnavailable, startRgw } from './rgw-harness.js';
import { FaultyStore } from './store-faults.js';

const dirs = tempDirs();
const NO_CONDITIONAL = 's3rver ignores If-None-Match and If-Match';
/** s3rver 3.7.1 answers 500 to a truncated listing unless node runs with --openssl-legacy-provider */
const NO_PAGING = 's3rver cannot page listings under this Node';
const QUICK_RETRY = { attempts: 5, baseDelayMs: 1, maxDelayMs: 5 };
const RGW_START_MS = 240_000;

async function expectStoreError(p: Promise<unknown>, code: StoreError['code']): Promise<void> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e, `expected StoreError ${code}`).toBeInstanceOf(StoreError);
  expect((e as StoreError).code).toBe(code);
}

async function expectLocked(p: Promise<unknown>): Promise<KeepError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(KeepError);
  expect((e as KeepError).code).toBe('LOCKED');
  return e as KeepError;
}

/** An s3rver on a free loopback port, with one bucket. */
async function startS3rver(bucket: string): Promise<{ endpoint: string; close(): Promise<void> }> {
  const port = await freePort();
  const server = new S3rver({ address: '127.0.0.1', port, silent: true, directory: dirs.make('keep-s3rver-'), configureBuckets: [{ name: bucket, configs: [] }] });
  await server.run();
  return { endpoint: `http://127.0.0.1:${port}`, close: () => server.close() };
}

interface Backend {
  name: string;
  /** why the backend cannot run here */
  unavailable?: string;
  /** why create-only and If-Match cases cannot run on it */
  noConditional?: string;
  /** why listings of more than one page cannot run on it */
  noPaging?: string;
  start(): Promise<void>;
  /** a store on a fresh, empty root or prefix */
  open(): Promise<ObjectStore>;
  stop(): Promise<void>;
}

function s3Backend(name: string, unavailable: string | undefined, noConditional: string | undefined, noPaging: string | undefined, server: () => Promise<{ endpoint: string; accessKeyId: string; secretAccessKey: string; stop(): Promise<void> }>): Backend {
  let srv: Awaited<ReturnType<typeof server>> | undefined;
  const opened: ObjectStore[] = [];
  let n = 0;
  return {
    name,
    unavailable,
    noConditional,
    noPaging,
    async start() {
      srv = await server();
      const admin = new S3ObjectStore({ bucket: 'keep-test', endpoint: srv.endpoint, forcePathStyle: true, requestChecksumCalculation: 'WHEN_REQUIRED', credentials: { accessKeyId: srv.accessKeyId, secretAccessKey: srv.secretAccessKey } });
      await admin.createBucketIfMissing();
      await admin.close();
    },
    async open() {
      const store = new S3ObjectStore({
        bucket: 'keep-test',
        prefix: `repo-${++n}/`,
        endpoint: srv!.endpoint,
        forcePathStyle: true,
        requestChecksumCalculation: 'WHEN_REQUIRED',
        credentials: { accessKeyId: srv!.accessKeyId, secretAccessKey: srv!.secretAccessKey },
      });
      opened.push(store);
      return store;
    },
    async stop() {
      for (const s of opened) await s.close();
      await srv?.stop();
    },
  };
}

const backends: Backend[] = [
  { name: 'local directory', start: async () => {}, open: async () => new LocalDirectoryStore(dirs.make('keep-store-')), stop: async () => {} },
  s3Backend('s3rver', undefined, NO_CONDITIONAL, NO_PAGING, async () => {
    const s = await startS3rver('keep-test');
    return { endpoint: s.endpoint, accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER', stop: s.close };
  }),
  s3Backend('Ceph RGW', rgwUnavailable(), undefined, undefined, async () => {
    const rgw: Rgw = await startRgw();
    return rgw;
  }),
];

const bytes = (n: number, seed: string) => {
  const out = Buffer.alloc(n);
  let block = crypto.createHash('sha256').update(seed).digest();
  for (let o = 0; o < n; o += block.length) {
    block.copy(out, o);
    block = crypto.createHash('sha256').update(block).digest();
  }
  return out;
};

for (const b of backends) {
  describe.skipIf(b.unavailable)(`store conformance: ${b.name}${b.unavailable ? ` (skipped: ${b.unavailable})` : ''}`, () => {
    const onlyConditional = it.skipIf(b.noConditional);
    const conditionalNote = b.noConditional ? ` (skipped: ${b.noConditional})` : '';
    beforeAll(() => b.start(), RGW_START_MS);
    afterAll(() => b.stop(), 60_000);

    it('put, get, head; a missing key is not-found / undefined', async () => {
      const s = await b.open();
      const data = bytes(70_000, 'a');
      const { etag } = await s.put('packs/ab/ab01.pack', data);
      const got = await s.get('packs/ab/ab01.pack');
      expect(got.bytes.equals(data)).toBe(true);
      expect(got.size).toBe(data.length);
      expect(got.etag).toBe(etag);
      expect(await s.head('packs/ab/ab01.pack')).toEqual({ key: 'packs/ab/ab01.pack', size: data.length, etag });
      expect(await s.head('packs/ab/none.pack')).toBeUndefined();
      await expectStoreError(s.get('packs/ab/none.pack'), 'not-found');
    });

    it('ranged get returns that slice and the whole size; a range past the end is cut', async () => {
      const s = await b.open();
      const data = bytes(100_000, 'r');
      await s.put('packs/cd/cd01.pack', data);
      const mid = await s.get('packs/cd/cd01.pack', { range: { offset: 12_345, length: 1000 } });
      expect(mid.bytes.equals(data.subarray(12_345, 13_345))).toBe(true);
      expect(mid.size).toBe(data.length);
      const tail = await s.get('packs/cd/cd01.pack', { range: { offset: 99_990, length: 64 } });
      expect(tail.bytes.equals(data.subarray(99_990))).toBe(true);
      const past = await s.get('packs/cd/cd01.pack', { range: { offset: 200_000, length: 10 } });
      expect(past.bytes.length).toBe(0);
      expect(past.size).toBe(data.length);
    });

    it('an unconditional put replaces; deleteMany removes what exists and ignores what does not', async () => {
      const s = await b.open();
      await s.put('snapshots/s1.json', Buffer.from('one'));
      await s.put('snapshots/s1.json', Buffer.from('two'));
      expect((await s.get('snapshots/s1.json')).bytes.toString()).toBe('two');
      await s.put('snapshots/s2.json', Buffer.from('keep me'));
      await s.deleteMany(['snapshots/s1.json', 'snapshots/never.json']);
      expect(await s.head('snapshots/s1.json')).toBeUndefined();
      expect((await s.get('snapshots/s2.json')).bytes.toString()).toBe('keep me');
    });

    it('list returns a prefix in key order: a key prefix, not only a directory', async () => {
      const s = await b.open();
      const keys = ['packs/aa/1.pack', 'packs/ab/2.pack', 'packs/ba/3.pack', 'packsx/4', 'snapshots/x.json', 'config.json'];
      for (const k of keys) await s.put(k, Buffer.from(k));
      expect((await s.list('packs/a')).objects.map((o) => o.key)).toEqual(['packs/aa/1.pack', 'packs/ab/2.pack']);
      expect((await s.list('packs/')).objects.map((o) => o.key)).toEqual(['packs/aa/1.pack', 'packs/ab/2.pack', 'packs/ba/3.pack']);
      const all = (await s.list('')).objects;
      expect(all.map((o) => o.key)).toEqual([...keys].sort());
      expect(all.every((o) => o.size === Buffer.byteLength(o.key) && o.etag !== '')).toBe(true);
      expect((await s.list('nothing/')).objects).toEqual([]);
    });

    it.skipIf(b.noPaging)(`list pages through a prefix, every key once${b.noPaging ? ` (skipped: ${b.noPaging})` : ''}`, async () => {
      const s = await b.open();
      const keys = [...Array.from({ length: 23 }, (_, i) => `packs/${i % 2 ? 'aa' : 'ab'}/${String(i).padStart(3, '0')}.pack`), 'snapshots/x.json', 'keys/k.json', 'config.json'];
      for (const k of keys) await s.put(k, Buffer.from(k));
      const pages: string[][] = [];
      let cursor: string | undefined;
      do {
        const page = await s.list('packs/', { limit: 7, cursor });
        pages.push(page.objects.map((o) => o.key));
        cursor = page.cursor;
      } while (cursor !== undefined);
      const packs = keys.filter((k) => k.startsWith('packs/')).sort();
      expect(pages.flat()).toEqual(packs);
      expect(pages.length).toBeGreaterThanOrEqual(4);
      expect(pages.slice(0, -1).every((p) => p.length === 7)).toBe(true);
      const partial = await s.list('packs/a');
      expect(partial.objects.map((o) => o.key)).toEqual(packs);
      expect((await s.list('packs/aa/')).objects.map((o) => o.key)).toEqual(packs.filter((k) => k.startsWith('packs/aa/')));
      const all: string[] = [];
      for await (const o of listAll(s, '', 5)) {
        expect(o.size).toBe(Buffer.byteLength(o.key));
        all.push(o.key);
      }
      expect(all).toEqual([...keys].sort());
      expect((await s.list('nothing/')).objects).toEqual([]);
    });

    onlyConditional(`create-only put refuses an existing key and leaves it as it was${conditionalNote}`, async () => {
      const s = await b.open();
      await s.put('packs/ef/ef01.pack', Buffer.from('first'), { ifNoneMatch: '*' });
      await expectStoreError(s.put('packs/ef/ef01.pack', Buffer.from('second'), { ifNoneMatch: '*' }), 'precondition-failed');
      expect((await s.get('packs/ef/ef01.pack')).bytes.toString()).toBe('first');
      // two writers at once: exactly one creates it
      const results = await Promise.allSettled(['x', 'y', 'z'].map((w) => s.put('race.obj', Buffer.from(w), { ifNoneMatch: '*' })));
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    });

    onlyConditional(`If-Match replaces only the version it names${conditionalNote}`, async () => {
      const s = await b.open();
      const v1 = await s.put('writer.test', Buffer.from('v1'), { ifNoneMatch: '*' });
      const v2 = await s.put('writer.test', Buffer.from('v2'), { ifMatch: v1.etag });
      expect(v2.etag).not.toBe(v1.etag);
      await expectStoreError(s.put('writer.test', Buffer.from('stale'), { ifMatch: v1.etag }), 'precondition-failed');
      expect((await s.get('writer.test')).bytes.toString()).toBe('v2');
      await expectStoreError(s.put('missing.test', Buffer.from('x'), { ifMatch: v1.etag }), 'precondition-failed');
      expect(await s.head('missing.test')).toBeUndefined();
    });

    onlyConditional(`writer lease: one holder, refused while fresh, renewed, taken over when expired${conditionalNote}`, async () => {
      const s = await b.open();
      const clock = new ManualClock(1_000_000);
      const ttlMs = 60_000;
      const a = await WriterLease.acquire(s, { holder: 'keepd-a', clock, ttlMs });
      const refused = await expectLocked(WriterLease.acquire(s, { holder: 'keepd-b', clock, ttlMs }));
      expect(refused.message).toContain('keepd-a');
      clock.advance(ttlMs - 1000);
      await a.renew(); // now good until 2 * ttl - 1000 from the start
      clock.advance(ttlMs - 2000);
      await expectLocked(WriterLease.acquire(s, { holder: 'keepd-b', clock, ttlMs }));
      clock.advance(5000); // expired: a stopped renewing
      const b2 = await WriterLease.acquire(s, { holder: 'keepd-b', clock, ttlMs });
      expect(b2.record.holder).toBe('keepd-b');
      await expectLocked(a.renew()); // a lost it and must stop
      await a.release(); // leaves b's lease alone
      await expectLocked(WriterLease.acquire(s, { holder: 'keepd-a', clock, ttlMs }));
      await b2.release();
      const again = await WriterLease.acquire(s, { holder: 'keepd-a', clock, ttlMs });
      expect(again.record.holder).toBe('keepd-a');
    });

    onlyConditional(`writer lease: shared by processes of one site, refused to another site${conditionalNote}`, async () => {
      const s = await b.open();
      const clock = new ManualClock(9_000_000);
      const ttlMs = 60_000;
      const serve = await WriterLease.acquire(s, { holder: 'keepd serve on host-a:/srv/keep', clock, ttlMs });
      // keepd prune beside it, on the same host and data directory: it works under serve's lease
      expect(await WriterLease.acquireOrShare(s, { holder: 'keepd prune on host-a:/srv/keep', clock, ttlMs })).toBe('shared');
      // the same command from another site (another host, or another data directory) is refused
      const refused = await expectLocked(WriterLease.acquireOrShare(s, { holder: 'keepd prune on host-b:/srv/keep', clock, ttlMs }));
      expect(refused.message).toContain('keepd serve on host-a');
      await expectLocked(WriterLease.acquireOrShare(s, { holder: 'keepd prune on host-a:/srv/other', clock, ttlMs }));
      // given back, the same site's command takes it for itself
      await serve.release();
      const prune = await WriterLease.acquireOrShare(s, { holder: 'keepd prune on host-a:/srv/keep', clock, ttlMs });
      expect(prune).not.toBe('shared');
      expect((prune as WriterLease).record.holder).toBe('keepd prune on host-a:/srv/keep');
      await (prune as WriterLease).release();
    });

    onlyConditional(`writer lease: of writers racing for it, exactly one wins${conditionalNote}`, async () => {
      const s = await b.open();
      const clock = new ManualClock(5_000_000);
      const tries = await Promise.allSettled(['w1', 'w2', 'w3', 'w4'].map((holder) => WriterLease.acquire(s, { holder, clock, ttlMs: 60_000 })));
      expect(tries.filter((t) => t.status === 'fulfilled')).toHaveLength(1);
      for (const t of tries) if (t.status === 'rejected') expect((t.reason as KeepError).code).toBe('LOCKED');
    });
  });
}

describe('local directory store: the repository layout on disk', () => {
  it('keeps packs and snapshots at the paths the repository uses, and nothing in tmp/', async () => {
    const dir = dirs.make('keep-store-layout-');
    const s = new LocalDirectoryStore(dir);
    const id = 'ab'.padEnd(64, 'c');
    await s.put(repoKeys.pack(id), Buffer.from('pack'), { ifNoneMatch: '*' });
    await s.put(repoKeys.snapshot('s1'), Buffer.from('{}'));
    await s.put(repoKeys.keyFile('k1'), Buffer.from('{"k":1}'));
    expect(fs.readFileSync(packPath(path.join(dir, 'packs'), id), 'utf8')).toBe('pack');
    expect(fs.readFileSync(path.join(dir, 'snapshots', 's1.json'), 'utf8')).toBe('{}');
    expect(fs.readFileSync(path.join(dir, 'keys', 'k1.json'), 'utf8')).toBe('{"k":1}');
    expect(fs.readdirSync(path.join(dir, 'tmp'))).toEqual([]);
    // a pack being written (in tmp/) is never listed
    fs.writeFileSync(path.join(dir, 'tmp', 'half.pack'), 'x');
    expect((await s.list('')).objects.map((o) => o.key)).toEqual([repoKeys.keyFile('k1'), repoKeys.pack(id), repoKeys.snapshot('s1')]);
    await expectStoreError(s.put('../escape', Buffer.from('x')), 'failed');
  });
});

describe('retries with back-off on 503 SlowDown', () => {
  it('a fault-injecting wrapper: transient failures are retried, answers are not, and the retries give up', async () => {
    const faulty = new FaultyStore(new LocalDirectoryStore(dirs.make('keep-store-faults-')));
    const store = new RetryingStore(faulty, QUICK_RETRY);
    faulty.slowDown('put', 3);
    await store.put('packs/aa/one.pack', Buffer.from('one'), { ifNoneMatch: '*' });
    expect(faulty.calls.put).toBe(4);
    expect(store.retries).toBe(3);
    expect((await store.get('packs/aa/one.pack')).bytes.toString()).toBe('one');

    faulty.slowDown('list', 2);
    expect((await store.list('packs/')).objects).toHaveLength(1);
    expect(faulty.calls.list).toBe(3);

    const getsBefore = faulty.calls.get;
    await expectStoreError(store.get('packs/aa/none.pack'), 'not-found');
    expect(faulty.calls.get - getsBefore).toBe(1);

    faulty.slowDown('head', 10);
    await expectStoreError(store.head('packs/aa/one.pack'), 'transient');
    expect(faulty.calls.head).toBe(QUICK_RETRY.attempts);
  });

  it('a create-only put whose reply was lost after it landed succeeds on retry (the bytes there are ours)', async () => {
    const local = new LocalDirectoryStore(dirs.make('keep-store-faults-'));
    const faulty = new FaultyStore(local);
    const store = new RetryingStore(faulty, QUICK_RETRY);
    faulty.slowDown('put', 1, true);
    await store.put('snapshots/s.json', Buffer.from('mine'), { ifNoneMatch: '*' });
    expect(faulty.calls.put).toBe(2);
    // someone else's bytes there are still a refusal
    faulty.slowDown('put', 1, false);
    await local.put('snapshots/t.json', Buffer.from('theirs'), { ifNoneMatch: '*' });
    await expectStoreError(store.put('snapshots/t.json', Buffer.from('mine'), { ifNoneMatch: '*' }), 'precondition-failed');
  });

  it('a lease renewal whose reply was lost is not taken for a lost lease, and the next renewal still matches', async () => {
    const faulty = new FaultyStore(new LocalDirectoryStore(dirs.make('keep-store-faults-')));
    const store = new RetryingStore(faulty, QUICK_RETRY);
    const clock = new ManualClock(0);
    const lease = await WriterLease.acquire(store, { holder: 'keepd-a', clock, ttlMs: 60_000 });
    clock.advance(20_000);
    faulty.slowDown('put', 1, true);
    await lease.renew();
    expect(lease.record.expiresAt).toBe(80_000);
    clock.advance(20_000);
    await lease.renew();
    expect(lease.record.expiresAt).toBe(100_000);
  });

  it('a real S3 client behind a proxy that answers 503 SlowDown: classified transient and retried', async () => {
    const s3 = await startS3rver('keep-retry');
    const target = new URL(s3.endpoint);
    let refuse = 0;
    let refused = 0;
    const proxy = http.createServer((req, res) => {
      if (refuse > 0) {
        refuse--;
        refused++;
        req.resume();
        res.writeHead(503, { 'content-type': 'application/xml' });
        res.end('<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>');
        return;
      }
      const up = http.request({ host: target.hostname, port: target.port, path: req.url, method: req.method, headers: req.headers }, (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
      });
      req.pipe(up);
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', () => r()));
    const endpoint = `http://127.0.0.1:${(proxy.address() as net.AddressInfo).port}`;
    const s3store = new S3ObjectStore({ bucket: 'keep-retry', endpoint, forcePathStyle: true, requestChecksumCalculation: 'WHEN_REQUIRED', credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } });
    try {
      refuse = 1;
      await expectStoreError(s3store.put('a.obj', Buffer.from('x')), 'transient');
      const store = new RetryingStore(s3store, QUICK_RETRY);
      refuse = 3;
      refused = 0;
      await store.put('packs/aa/a.pack', Buffer.from('through'));
      expect(refused).toBe(3);
      expect(store.retries).toBe(3);
      refuse = 2;
      expect((await store.get('packs/aa/a.pack')).bytes.toString()).toBe('through');
      expect(store.retries).toBe(5);
    } finally {
      await s3store.close();
      await new Promise((r) => proxy.close(r));
      await s3.close();
    }
  });
});
