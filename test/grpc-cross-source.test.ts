/**
 * Issue 13, item 1: no existence oracle and no cross-source read. A source-
 * scoped agent (the default) that uploads an id another source stored gets
 * its own copy of the bytes it sent, never the other source's: answers,
 * errors and reads back are the same whether the id was stored or not; a
 * commit may reach only blobs its own source stored; an agent that stored
 * garbage first cannot poison another source's backup; prune keeps a copy as
 * long as its snapshot lives; a replica keeps each source's own bytes.
 * Real keepd and keep processes; the attacker is a hand-made gRPC client.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { storageHash } from '@keep/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { forget, prune, TWO_HOURS_MS } from './gc-util.js';
import { compareTrees, packBlobs, packFiles, restoredPath, tempDirs } from './helpers.js';
import { agentEnv, createToken, Keepd, keepdInit, keepdJson, keepJson, killAllKeepd, packBytes, RawClient, runKeep, startKeepd, Token, wire } from './keepd-harness.js';
import { syncOk } from './sync-util.js';

const KiB = 1024;

/** Files of random bytes, each one chunk (below the minimum chunk size). */
/** `n` random files; the default size is under the chunker's 128 KiB minimum, so each is one chunk whatever the repository key cuts. */
function makeFiles(root: string, n: number, size = 120 * KiB): number {
  fs.mkdirSync(root, { recursive: true });
  for (let i = 0; i < n; i++) fs.writeFileSync(path.join(root, `f${i}.bin`), crypto.randomBytes(size));
  return n * size;
}

/** A well-formed data blob under no key (keepd cannot tell). */
const dataBlob = (n = 100) => Buffer.concat([Buffer.from([1, 0, 0, 0]), crypto.randomBytes(28 + n)]);

/** A well-formed tree blob listing `edges` (type, id), with a random "payload". */
function treeBlob(edges: { type: number; id: Buffer }[]): Buffer {
  const count = Buffer.alloc(4);
  count.writeUInt32BE(edges.length);
  return Buffer.concat([Buffer.from([1, 1, 0, 0]), crypto.randomBytes(28), count, ...edges.map((e) => Buffer.concat([Buffer.from([e.type]), e.id])), crypto.randomBytes(40)]);
}

/** An error's text with every 64-digit id blanked: what must not differ between stored and unknown ids. */
const shape = (r: { code: number; details: string }) => `${r.code} ${r.details.replace(/[0-9a-f]{64}/g, '<id>')}`;

describe('one source cannot probe, read or poison another source’s blobs', () => {
  const tmp = tempDirs();
  let dir: string;
  let data: string;
  let keepd: Keepd;
  let w: Awaited<ReturnType<typeof wire>>;
  const tok: Record<string, Token> = {};
  /** chunk ids both A and B stored, each its own bytes (the first test) */
  let shared: Buffer[] = [];
  let R: string;
  const env = (t: string) => agentEnv(keepd, tok[t].token);
  const enc = (schema: string, v: object) => w.protobuf.toBinary(w.proto[schema], w.protobuf.create(w.proto[schema], v));
  const dec = (schema: string, b: Uint8Array) => w.protobuf.fromBinary(w.proto[schema], b);
  const client = (t: string, k = keepd) => new RawClient(w.grpc, `127.0.0.1:${k.port}`, tok[t].token);

  async function openSession(c: RawClient, source: string): Promise<string> {
    const r = await c.unary('OpenSession', enc('OpenSessionRequestSchema', { source, host: 'prober' }));
    expect(r.ok, JSON.stringify(r)).toBe(true);
    return dec('OpenSessionResponseSchema', (r as any).body).sessionId;
  }
  async function closeSession(c: RawClient, sessionId: string): Promise<void> {
    const r = await c.unary('CloseSession', enc('CloseSessionRequestSchema', { sessionId }));
    expect(r.ok, JSON.stringify(r)).toBe(true);
  }
  /** One Upload stream of one blob: its status and ack. */
  async function upload1(c: RawClient, sessionId: string, id: Buffer, bytes: Buffer, hash = storageHash(bytes)) {
    const up = await c.upload([enc('UploadRequestSchema', { sessionId, id, data: bytes, storageHash: hash })]);
    const acks = up.responses.map((r) => dec('UploadResponseSchema', r));
    return { code: up.code, details: up.details, ack: acks[0] && { stored: acks[0].stored, newBytes: String(acks[0].newBytes) } };
  }
  /** ReadBlobs of `ids`, one blob per message: the bytes by hex id, and the status. */
  async function read(c: RawClient, ids: Buffer[]) {
    const r = await c.readBlobs(enc('ReadBlobsRequestSchema', { ids }));
    const blobs = new Map<string, Buffer>();
    for (const m of r.responses) {
      const res = dec('ReadBlobsResponseSchema', m);
      blobs.set(Buffer.from(res.id).toString('hex'), Buffer.from(res.data));
    }
    return { code: r.code, details: r.details, blobs };
  }
  /** The data blob ids of the packs written while `fn` ran. */
  async function newDataIds(fn: () => Promise<unknown>): Promise<Buffer[]> {
    const before = new Set(packFiles(data));
    await fn();
    return packFiles(data)
      .filter((p) => !before.has(p))
      .flatMap(packBlobs)
      .filter((b) => b.type === 0)
      .map((b) => Buffer.from(b.id, 'hex'));
  }
  const rootOf = (snapshot: string) => JSON.parse(fs.readFileSync(path.join(data, 'snapshots', `${snapshot}.json`), 'utf8')).root as string;

  beforeAll(async () => {
    dir = tmp.make('keep-cross-source-');
    data = path.join(dir, 'data');
    R = path.join(dir, 'replica');
    await keepdInit(data);
    for (const s of ['a', 'b', 'c']) tok[s] = await createToken(data, 'agent', { sources: [s] });
    for (const s of ['shared1', 'shared2']) tok[s] = await createToken(data, 'agent', { sources: [s], dedup: 'repository' });
    tok.replica = await createToken(data, 'replica');
    tok.admin = await createToken(data, 'admin');
    keepd = await startKeepd(data);
    w = await wire();
    await keepJson(['init', '--kdf-cost', '12'], env('a'));
  });

  afterAll(killAllKeepd);

  it('the exact attack: a right and a wrong guess look the same to A, and A never reads B’s bytes', async () => {
    // The chunk A guesses right, and other content of B's that A backs up itself afterwards.
    const guessed = path.join(dir, 'b-0');
    makeFiles(guessed, 1);
    const [right] = await newDataIds(() => keepJson(['backup', guessed, '--source', 'b'], env('b')));
    const srcB = path.join(dir, 'b-1');
    makeFiles(srcB, 3);
    const ofB = await newDataIds(() => keepJson(['backup', srcB, '--source', 'b'], env('b')));
    expect(ofB.length).toBe(3);
    const otherOfB = ofB[0];
    const wrong = crypto.randomBytes(32);

    const a = client('a');
    const b = client('b');
    try {
      const s = await openSession(a, 'a');
      // Garbage header, zero storage hash: refused the same way for a stored and an unknown id.
      const bogus = Buffer.alloc(64, 7);
      const badRight = await upload1(a, s, right, bogus, Buffer.alloc(32));
      const badWrong = await upload1(a, s, wrong, bogus, Buffer.alloc(32));
      expect(badWrong.code).not.toBe(w.grpc.status.OK);
      expect(shape(badRight), 'an upload of garbage under a stored id must fail like one under an unknown id').toBe(shape(badWrong));
      // A well-formed blob whose storage hash does not match: the same again.
      const hashRight = await upload1(a, s, right, dataBlob(), crypto.randomBytes(32));
      const hashWrong = await upload1(a, s, wrong, dataBlob(), crypto.randomBytes(32));
      expect(hashWrong.code).toBe(w.grpc.status.DATA_LOSS);
      expect(shape(hashRight)).toBe(shape(hashWrong));

      // Well-formed blobs: the same ack for both, and each read back is exactly what A sent.
      const mineRight = dataBlob();
      const mineWrong = dataBlob();
      const okRight = await upload1(a, s, right, mineRight);
      const okWrong = await upload1(a, s, wrong, mineWrong);
      expect(okRight.code, okRight.details).toBe(w.grpc.status.OK);
      expect(okRight.ack).toEqual(okWrong.ack);
      await closeSession(a, s);

      const back = await read(a, [right, wrong]);
      expect(back.code, back.details).toBe(w.grpc.status.OK);
      expect(back.blobs.get(right.toString('hex'))!.equals(mineRight), 'A read back bytes it never sent (B’s)').toBe(true);
      expect(back.blobs.get(wrong.toString('hex'))!.equals(mineWrong)).toBe(true);
      // B still reads its own bytes, not A's.
      const forB = await read(b, [right]);
      expect(forB.code, forB.details).toBe(w.grpc.status.OK);
      expect(forB.blobs.get(right.toString('hex'))!.equals(mineRight)).toBe(false);

      // An id of B's that A never uploaded reads like an unknown one.
      const other = await read(a, [otherOfB]);
      const unknown = await read(a, [crypto.randomBytes(32)]);
      expect(other.blobs.size).toBe(0);
      expect(other.code).not.toBe(w.grpc.status.OK);
      expect(shape(other)).toBe(shape(unknown));
    } finally {
      a.close();
      b.close();
    }

    // A's own backup of B's very content: stored as A's, restored and decrypted from A's bytes.
    const ofA = await newDataIds(() => keepJson(['backup', srcB, '--source', 'a'], env('a')));
    expect(ofA.map((x) => x.toString('hex')).sort(), 'A’s backup of the same content stores its own copies').toEqual(ofB.map((x) => x.toString('hex')).sort());
    const target = path.join(dir, 'restore-1-a');
    const r = await runKeep(['restore', 'latest', '--source', 'a', '--target', target], env('a'));
    expect(r.code, r.stderr).toBe(0);
    expect(compareTrees(srcB, restoredPath(target, srcB))).toEqual([]);
    const c = await keepdJson(['check', '--data', data, '--read-data']);
    expect(c.ok, JSON.stringify(c.errors)).toBe(true);
    shared = ofB;
  });

  it('rebuild-index keeps each source’s own bytes: neither reads the other’s afterwards', async () => {
    // More ids, each in packs of its own on both sides: a rebuild scans packs in directory order, so with
    // one pack pair the wrong copy would become the primary only every other run; with seven, nearly always.
    for (let i = 0; i < 6; i++) {
      const one = path.join(dir, `shared-rebuild-${i}`);
      makeFiles(one, 1, 20 * KiB);
      const [id] = await newDataIds(() => keepJson(['backup', one, '--source', 'b'], env('b')));
      await keepJson(['backup', one, '--source', 'a'], env('a'));
      shared.push(id);
    }
    expect(shared.length).toBe(9);
    const readAll = async () => {
      const [a, b] = [client('a'), client('b')];
      try {
        return { a: await read(a, shared), b: await read(b, shared) };
      } finally {
        a.close();
        b.close();
      }
    };
    const before = await readAll();
    await keepd.stop();
    const rb = await keepdJson(['rebuild-index', '--data', data]);
    expect(rb.damaged_packs).toEqual([]);
    keepd = await startKeepd(data);
    const after = await readAll();
    for (const id of shared) {
      const hex = id.toString('hex');
      expect(before.a.blobs.get(hex)!.equals(before.b.blobs.get(hex)!)).toBe(false);
      expect(after.a.blobs.get(hex)!.equals(before.a.blobs.get(hex)!), 'A reads its own bytes after the rebuild').toBe(true);
      expect(after.b.blobs.get(hex)!.equals(before.b.blobs.get(hex)!), 'B reads its own bytes after the rebuild').toBe(true);
    }
    const c = await keepdJson(['check', '--data', data, '--read-data']);
    expect(c.ok, JSON.stringify(c.errors)).toBe(true);
  });

  it('a commit may reach only blobs of its own source: another source’s chunk or complete tree is "missing"', async () => {
    const srcB = path.join(dir, 'b-2');
    makeFiles(srcB, 2);
    let snapB: any;
    const ofB = await newDataIds(async () => (snapB = await keepJson(['backup', srcB, '--source', 'b'], env('b'))));
    const rootB = Buffer.from(rootOf(snapB.snapshot), 'hex');

    const a = client('a');
    try {
      const s = await openSession(a, 'a');
      const commit = async (root: Buffer) => {
        const r = await a.unary('Commit', enc('CommitRequestSchema', { sessionId: s, snapshot: { source: 'a', host: 'prober', time: new Date().toISOString(), root: root.toString('hex') } }));
        return r.ok ? { code: 0, details: 'committed' } : (r as any);
      };
      const toB = crypto.randomBytes(32);
      const toNothing = crypto.randomBytes(32);
      for (const [id, bytes] of [
        [toB, treeBlob([{ type: 0, id: ofB[0] }])],
        [toNothing, treeBlob([{ type: 0, id: crypto.randomBytes(32) }])],
        // B's root tree id (complete here), uploaded by A listing a chunk of B's.
        [rootB, treeBlob([{ type: 0, id: ofB[1] }])],
      ] as [Buffer, Buffer][]) {
        const up = await upload1(a, s, id, bytes);
        expect(up.code, up.details).toBe(w.grpc.status.OK);
      }
      const missing = await commit(toNothing);
      expect(missing.code).toBe(w.grpc.status.FAILED_PRECONDITION);
      const viaChunk = await commit(toB);
      expect(shape(viaChunk), 'a snapshot of A reached a chunk only B stored').toBe(shape(missing));
      const viaTree = await commit(rootB);
      expect(shape(viaTree), 'a snapshot of A reached B’s complete tree').toBe(shape(missing));
      await closeSession(a, s);
    } finally {
      a.close();
    }
  });

  it('garbage stored first under an id does not poison the source that stores the real content later', async () => {
    // Learn the chunk ids of some content (as an attacker who guessed it would know them), then let them go.
    const src = path.join(dir, 'victim');
    makeFiles(src, 2);
    let first: any;
    const ids = await newDataIds(async () => (first = await keepJson(['backup', src, '--source', 'c'], env('c'))));
    const second = await keepJson(['backup', path.join(dir, 'b-1'), '--source', 'c'], env('c'));
    await forget(data, ['--source', 'c', '--keep-last', '1', '--group-by', 'source']); // (its two snapshots back up different paths)
    await prune(data, TWO_HOURS_MS);
    expect(fs.existsSync(path.join(data, 'snapshots', `${first.snapshot}.json`))).toBe(false);
    expect(second.snapshot).toBeTruthy();

    // A stores garbage under those ids first...
    const a = client('a');
    try {
      const s = await openSession(a, 'a');
      for (const id of ids) expect((await upload1(a, s, id, dataBlob())).code).toBe(w.grpc.status.OK);
      await closeSession(a, s);
    } finally {
      a.close();
    }
    // ...then B backs up the content: B's restore is B's content.
    await keepJson(['backup', src, '--source', 'b'], env('b'));
    // With B's token, and with a token over every source (the restore names the snapshot's source).
    for (const t of ['b', 'admin']) {
      const target = path.join(dir, `restore-victim-${t}`);
      const r = await runKeep(['restore', 'latest', '--source', 'b', '--target', target], env(t));
      expect(r.code, `B's restore with the ${t} token failed: ${r.stderr}`).toBe(0);
      expect(compareTrees(src, restoredPath(target, src))).toEqual([]);
    }
  });

  it('prune keeps a source’s copies while its snapshot lives and removes them after forget', async () => {
    const src = path.join(dir, 'shared-gc');
    const size = makeFiles(src, 4);
    await keepJson(['backup', src, '--source', 'b'], env('b'));
    const beforeA = packBytes(data);
    await keepJson(['backup', src, '--source', 'a'], env('a'));
    expect(packBytes(data) - beforeA, 'A stores its own copy of content B stored').toBeGreaterThan(size * 0.95);

    await prune(data, TWO_HOURS_MS);
    for (const s of ['a', 'b']) {
      const target = path.join(dir, `restore-gc-${s}`);
      const r = await runKeep(['restore', 'latest', '--source', s, '--target', target], env(s));
      expect(r.code, r.stderr).toBe(0);
      expect(compareTrees(src, restoredPath(target, src))).toEqual([]);
    }

    // A moves on to other data; its snapshot of the shared content goes, and with it A's copies.
    const other = path.join(dir, 'a-other');
    makeFiles(other, 1, 10 * KiB);
    await keepJson(['backup', other, '--source', 'a'], env('a'));
    await forget(data, ['--source', 'a', '--keep-last', '1', '--group-by', 'source']); // (its two snapshots back up different paths)
    const beforePrune = packBytes(data);
    const p = await prune(data, TWO_HOURS_MS);
    expect(beforePrune - packBytes(data), `prune should remove A's copies: ${JSON.stringify(p)}`).toBeGreaterThan(size * 0.95);
    const target = path.join(dir, 'restore-gc-b-after');
    const r = await runKeep(['restore', 'latest', '--source', 'b', '--target', target], env('b'));
    expect(r.code, r.stderr).toBe(0);
    expect(compareTrees(src, restoredPath(target, src))).toEqual([]);
    const c = await keepdJson(['check', '--data', data, '--read-data']);
    expect(c.ok, JSON.stringify(c.errors)).toBe(true);
  });

  it('a replica keeps each source’s own bytes: A restores there with its token and reads A’s bytes', async () => {
    const src = path.join(dir, 'shared-sync');
    makeFiles(src, 2);
    const ofB = await newDataIds(() => keepJson(['backup', src, '--source', 'b'], env('b')));
    await keepJson(['backup', src, '--source', 'a'], env('a'));
    await syncOk(R, keepd.url, tok.replica.token);

    const onPrimary = { a: await read(client('a'), ofB), b: await read(client('b'), ofB) };
    const ra = await createToken(R, 'agent', { sources: ['a'] });
    const rb = await createToken(R, 'agent', { sources: ['b'] });
    const replica = await startKeepd(R);
    try {
      const target = path.join(dir, 'restore-replica-a');
      const r = await runKeep(['restore', 'latest', '--source', 'a', '--target', target], agentEnv(replica, ra.token));
      expect(r.code, r.stderr).toBe(0);
      expect(compareTrees(src, restoredPath(target, src))).toEqual([]);
      const ca = new RawClient(w.grpc, `127.0.0.1:${replica.port}`, ra.token);
      const cb = new RawClient(w.grpc, `127.0.0.1:${replica.port}`, rb.token);
      try {
        const onReplica = { a: await read(ca, ofB), b: await read(cb, ofB) };
        for (const id of ofB) {
          const hex = id.toString('hex');
          expect(onPrimary.a.blobs.get(hex)!.equals(onPrimary.b.blobs.get(hex)!)).toBe(false);
          expect(onReplica.a.blobs.get(hex)!.equals(onPrimary.a.blobs.get(hex)!), 'the replica holds A’s own bytes').toBe(true);
          expect(onReplica.b.blobs.get(hex)!.equals(onPrimary.b.blobs.get(hex)!)).toBe(true);
        }
      } finally {
        ca.close();
        cb.close();
      }
      const c = await keepdJson(['check', '--data', R, '--read-data']);
      expect(c.ok, JSON.stringify(c.errors)).toBe(true);
    } finally {
      await replica.stop();
    }
  });

  it('sources that share blobs on the primary (--dedup repository) share them on the replica too', async () => {
    const src = path.join(dir, 'shared-repo-dedup');
    const size = makeFiles(src, 4);
    await keepJson(['backup', src, '--source', 'shared1'], env('shared1'));
    const second = await keepJson(['backup', src, '--source', 'shared2'], env('shared2'));
    expect(second.bytes_sent).toBeLessThan(size / 100);
    const before = packBytes(R);
    await syncOk(R, keepd.url, tok.replica.token);
    const grown = packBytes(R) - before;
    expect(grown).toBeGreaterThan(size * 0.95);
    expect(grown, 'the replica stored shared bytes twice').toBeLessThan(size * 1.5);
  });
});
