/**
 * Dedup scope across agents (the "no existence oracle" rule, docs/ARCHITECTURE.md): two agents
 * with the same data. Tokens with --dedup repository negotiate against the
 * whole repository (the second sends ~nothing); default (source-scoped)
 * tokens are never told "have it" for another source's chunks, so the second
 * agent sends the data again, and keepd stores it as that source's own copy
 * (never its claim on bytes another source stored: issue 13, item 1).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { storageHash } from '@keep/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compareTrees, MiB, packBlobs, packFiles, restoredPath, tempDirs } from './helpers.js';
import { agentEnv, createToken, Keepd, keepdInit, keepdJson, keepJson, killAllKeepd, packBytes, RawClient, runKeep, startKeepd, Token, wire } from './keepd-harness.js';

function makeData(root: string, seed: string): number {
  fs.mkdirSync(path.join(root, 'small'), { recursive: true });
  let n = 0;
  for (let i = 0; i < 3; i++) {
    const b = crypto.randomBytes(2 * MiB + i * 1000);
    fs.writeFileSync(path.join(root, `big-${i}.bin`), b);
    n += b.length;
  }
  for (let i = 0; i < 20; i++) {
    const b = Buffer.from(`${seed} small file ${i} ${crypto.randomBytes(16).toString('hex')}\n`.repeat(20 + i));
    fs.writeFileSync(path.join(root, 'small', `f${i}.txt`), b);
    n += b.length;
  }
  return n;
}

describe('dedup scope between two agents with the same data', () => {
  const tmp = tempDirs();
  let dir: string;
  let data: string;
  let keepd: Keepd;
  const tok: Record<string, Token> = {};
  const env = (t: string) => agentEnv(keepd, tok[t].token);

  beforeAll(async () => {
    dir = tmp.make('keep-grpc-dedup-');
    data = path.join(dir, 'data');
    await keepdInit(data);
    tok.a = await createToken(data, 'agent', { sources: ['a'], dedup: 'repository' });
    tok.b = await createToken(data, 'agent', { sources: ['b'], dedup: 'repository' });
    tok.c = await createToken(data, 'agent', { sources: ['c'] });
    tok.d = await createToken(data, 'agent', { sources: ['d'] });
    tok.e = await createToken(data, 'agent', { sources: ['e'], dedup: 'source' });
    expect(tok.c.dedup).toBe('source');
    keepd = await startKeepd(data);
    await keepJson(['init', '--kdf-cost', '12'], env('a'));
  });

  afterAll(killAllKeepd);

  it('--dedup repository: the second agent sends ~0 bytes and the packs barely grow; both restore', async () => {
    const src = path.join(dir, 'shared-1');
    const size = makeData(src, 'one');
    const first = await keepJson(['backup', src, '--source', 'a'], env('a'));
    expect(first.bytes_sent).toBeGreaterThan(size * 0.95);
    const before = packBytes(data);

    const second = await keepJson(['backup', src, '--source', 'b'], env('b'));
    expect(second.source).toBe('b');
    expect(second.bytes_read).toBe(size);
    expect(second.bytes_sent).toBeLessThan(size / 100);
    expect(packBytes(data) - before).toBeLessThan(size / 100);

    // Each agent restores its own snapshot (b reads chunks a uploaded: its snapshot references them).
    for (const s of ['a', 'b']) {
      const target = path.join(dir, `restore-1-${s}`);
      const r = await runKeep(['restore', 'latest', '--source', s, '--target', target], env(s));
      expect(r.code, `restore of ${s}: ${r.stderr}`).toBe(0);
      expect(compareTrees(src, restoredPath(target, src))).toEqual([]);
    }
  });

  it('--dedup source (default): the second agent sends the data again, stored as its own copy', async () => {
    const src = path.join(dir, 'shared-2');
    const size = makeData(src, 'two');
    const first = await keepJson(['backup', src, '--source', 'c'], env('c'));
    expect(first.bytes_sent).toBeGreaterThan(size * 0.95);
    const before = packBytes(data);

    const second = await keepJson(['backup', src, '--source', 'd'], env('d'));
    // Not told "have it" for c's chunks: everything crossed the wire again...
    expect(second.bytes_sent).toBeGreaterThan(size * 0.95);
    expect(second.chunks_new).toBe(first.chunks_new);
    // ...and keepd stored it again, as d's copy: d never reads bytes c stored.
    expect(packBytes(data) - before).toBeGreaterThan(size * 0.95);

    // A rerun of d is answered from d's own uploads: nothing is sent.
    const again = await keepJson(['backup', src, '--source', 'd'], env('d'));
    expect(again.bytes_sent).toBeLessThan(size / 100);

    const target = path.join(dir, 'restore-2-d');
    const r = await runKeep(['restore', 'latest', '--source', 'd', '--target', target], env('d'));
    expect(r.code, r.stderr).toBe(0);
    expect(compareTrees(src, restoredPath(target, src))).toEqual([]);

    const c = await keepdJson(['check', '--data', data]);
    expect(c.ok, JSON.stringify(c.errors)).toBe(true);
  });

  it('a source keeps what it stored through keepd rebuild-index (first owners live in the blob records, which the packs do not know)', async () => {
    const src = path.join(dir, 'owned-3');
    const size = makeData(src, 'three');
    const first = await keepJson(['backup', src, '--source', 'c'], env('c'));
    expect(first.bytes_sent).toBeGreaterThan(size * 0.95);

    await keepd.stop();
    const rb = await keepdJson(['rebuild-index', '--data', data]);
    expect(rb.blobs).toBeGreaterThan(20);
    keepd = await startKeepd(data);

    // Still c's: a rerun is told "have it" for everything, and c reads its chunks back.
    const again = await keepJson(['backup', src, '--source', 'c'], env('c'));
    expect(again.bytes_sent).toBeLessThan(size / 100);
    const target = path.join(dir, 'restore-3-c');
    const r = await runKeep(['restore', 'latest', '--source', 'c', '--target', target], env('c'));
    expect(r.code, r.stderr).toBe(0);
    expect(compareTrees(src, restoredPath(target, src))).toEqual([]);
    // ...and still not d's: d is not told "have it" for c's chunks.
    const other = await keepJson(['backup', src, '--source', 'd'], env('d'));
    expect(other.bytes_sent).toBeGreaterThan(size * 0.95);
  });

  it('on the wire, a source-scoped agent cannot tell whether another source stored a chunk', async () => {
    const { grpc, protobuf, proto } = await wire();
    const { create, toBinary, fromBinary } = protobuf;
    // Chunk ids c (and d) stored, read from the pack trailers on disk: what a prober would test.
    const stored = packFiles(data)
      .flatMap(packBlobs)
      .filter((b) => b.type === 0)
      .map((b) => Buffer.from(b.id, 'hex'));
    expect(stored.length).toBeGreaterThan(4);
    const probe = stored.slice(0, 4);
    const fresh = Array.from({ length: 4 }, () => crypto.randomBytes(32));

    const client = new RawClient(grpc, `127.0.0.1:${keepd.port}`, tok.e.token);
    try {
      const open = await client.unary('OpenSession', toBinary(proto.OpenSessionRequestSchema, create(proto.OpenSessionRequestSchema, { source: 'e', host: 'prober' })));
      expect(open.ok).toBe(true);
      const sessionId = fromBinary(proto.OpenSessionResponseSchema, (open as any).body).sessionId;

      // Offer: every id is "missing", stored or not.
      const offer = await client.unary('Offer', toBinary(proto.OfferRequestSchema, create(proto.OfferRequestSchema, { sessionId, ids: [...probe, ...fresh] })));
      expect(offer.ok).toBe(true);
      const missing = fromBinary(proto.OfferResponseSchema, (offer as any).body).missing.map((m: Uint8Array) => Buffer.from(m).toString('hex'));
      expect(missing.sort()).toEqual([...probe, ...fresh].map((b) => b.toString('hex')).sort());

      // Upload a well-formed blob under each id: the answers must not differ between stored and fresh ids,
      // one blob per message (as older agents send) or in a batch (issue 21).
      const blob = () => Buffer.concat([Buffer.from([1, 0, 0, 0]), crypto.randomBytes(28), crypto.randomBytes(100)]);
      const entry = (id: Buffer) => {
        const b = blob();
        return { id, data: b, storageHash: storageHash(b) };
      };
      const singles = [probe[0], probe[1], fresh[0], fresh[1]].map((id) => toBinary(proto.UploadRequestSchema, create(proto.UploadRequestSchema, { sessionId, ...entry(id) })));
      const batch = toBinary(proto.UploadRequestSchema, create(proto.UploadRequestSchema, { sessionId, blobs: [probe[2], probe[3], fresh[2], fresh[3]].map(entry) }));
      const up = await client.upload([...singles, batch]);
      expect(up.code, up.details).toBe(grpc.status.OK);
      const responses = up.responses.map((r) => fromBinary(proto.UploadResponseSchema, r));
      expect(responses).toHaveLength(5);
      const answer = (a: any) => JSON.stringify({ stored: a.stored, newBytes: String(a.newBytes) });
      for (const acks of [responses.slice(0, 4), responses[4].acks]) {
        expect(acks).toHaveLength(4);
        const forStored = acks.slice(0, 2).map(answer);
        const forFresh = acks.slice(2).map(answer);
        expect(forStored, 'UploadResponse reveals that another source already stored these chunks').toEqual(forFresh);
        expect(forStored[0]).toBe(JSON.stringify({ stored: true, newBytes: '132' }));
      }

      await client.unary('CloseSession', toBinary(proto.CloseSessionRequestSchema, create(proto.CloseSessionRequestSchema, { sessionId })));
    } finally {
      client.close();
    }
  });
});
