/**
 * Hostile or broken clients on the wire (raw bytes through grpc-js, no keep
 * agent): undecodable messages are INVALID_ARGUMENT, bad ids are refused,
 * oversized messages are RESOURCE_EXHAUSTED, a blob whose storage hash does
 * not match is refused with DATA_LOSS and never indexed, and keepd keeps
 * serving throughout.
 */
import crypto from 'node:crypto';
import path from 'node:path';
import { storageHash } from '@keep/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MiB, tempDirs } from './helpers.js';
import { createToken, Keepd, keepdInit, keepdJson, killAllKeepd, RawClient, startKeepd, Token, wire } from './keepd-harness.js';

describe('malformed and oversized messages', () => {
  const tmp = tempDirs();
  let data: string;
  let keepd: Keepd;
  let agent: Token;
  let admin: Token;
  let w: Awaited<ReturnType<typeof wire>>;
  let grpc: any;
  const enc = (schema: string, v: object) => w.protobuf.toBinary(w.proto[schema], w.protobuf.create(w.proto[schema], v));
  const dec = (schema: string, b: Uint8Array) => w.protobuf.fromBinary(w.proto[schema], b);
  const client = (t: Token) => new RawClient(grpc, `127.0.0.1:${keepd.port}`, t.token);

  /** A correct GetConfig answers with the repository's config. */
  async function healthy(c: RawClient): Promise<void> {
    const r = await c.unary('GetConfig', enc('GetConfigRequestSchema', { protocolVersion: 1 }));
    expect(r.ok, JSON.stringify(r)).toBe(true);
    const res = dec('GetConfigResponseSchema', (r as any).body);
    expect(JSON.parse(res.configJson).id).toMatch(/^[0-9a-f]{32}$/);
    expect(keepd.exited()).toBeUndefined();
  }

  async function openSession(c: RawClient, source: string): Promise<string> {
    const r = await c.unary('OpenSession', enc('OpenSessionRequestSchema', { source, host: 'raw-test' }));
    expect(r.ok, JSON.stringify(r)).toBe(true);
    return dec('OpenSessionResponseSchema', (r as any).body).sessionId;
  }

  /** A well-formed data blob (header, nonce, "ciphertext" and tag) under no key: keepd cannot tell. */
  const blob = (n: number) => Buffer.concat([Buffer.from([1, 0, 0, 0]), crypto.randomBytes(28 + n)]);

  beforeAll(async () => {
    data = path.join(tmp.make('keep-grpc-raw-'), 'data');
    await keepdInit(data);
    agent = await createToken(data, 'agent', { sources: ['raw'] });
    admin = await createToken(data, 'admin');
    keepd = await startKeepd(data);
    w = await wire();
    grpc = w.grpc;
  });

  afterAll(killAllKeepd);

  it('garbage bytes are INVALID_ARGUMENT, and keepd answers correct calls afterwards', async () => {
    const c = client(agent);
    try {
      await healthy(c);
      const garbage = [
        Buffer.from([0x08]), // varint field, value missing
        Buffer.from([0x0a, 0x10, 0x01]), // length-delimited field longer than the message
        Buffer.from([0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]), // varint over 10 bytes
        Buffer.from([0x07, 0x00]), // field 0, wire type 7
      ];
      for (const g of garbage) {
        const r = await c.unary('GetConfig', g);
        expect(r.ok, `GetConfig accepted ${g.toString('hex')}`).toBe(false);
        expect((r as any).code, `${g.toString('hex')}: ${(r as any).details}`).toBe(grpc.status.INVALID_ARGUMENT);
        expect((r as any).details).toMatch(/malformed/i);
      }
      // The same on other methods, and on the upload stream.
      expect(await c.unary('ListSnapshots', Buffer.from([0x0a, 0x7f]))).toMatchObject({ ok: false, code: grpc.status.INVALID_ARGUMENT });
      const up = await c.upload([Buffer.from([0x12, 0x40, 0x00])]);
      expect(up.code, up.details).toBe(grpc.status.INVALID_ARGUMENT);
      await healthy(c);
    } finally {
      c.close();
    }
  });

  it('an Offer or ReadBlobs with an id that is not 32 bytes, or too many ids, is INVALID_ARGUMENT', async () => {
    const c = client(agent);
    try {
      const sessionId = await openSession(c, 'raw');
      const short = await c.unary('Offer', enc('OfferRequestSchema', { sessionId, ids: [crypto.randomBytes(5)] }));
      expect(short).toMatchObject({ ok: false, code: grpc.status.INVALID_ARGUMENT });
      expect((short as any).details).toMatch(/32 bytes/);
      const long = await c.unary('Offer', enc('OfferRequestSchema', { sessionId, ids: [crypto.randomBytes(32), crypto.randomBytes(33)] }));
      expect(long).toMatchObject({ ok: false, code: grpc.status.INVALID_ARGUMENT });
      const many = await c.unary('Offer', enc('OfferRequestSchema', { sessionId, ids: Array.from({ length: 4097 }, () => crypto.randomBytes(32)) }));
      expect(many).toMatchObject({ ok: false, code: grpc.status.INVALID_ARGUMENT });
      // A correct Offer on the same session still works: a random id is missing.
      const id = crypto.randomBytes(32);
      const ok = await c.unary('Offer', enc('OfferRequestSchema', { sessionId, ids: [id] }));
      expect(ok.ok).toBe(true);
      expect(dec('OfferResponseSchema', (ok as any).body).missing.map((m: Uint8Array) => Buffer.from(m).toString('hex'))).toEqual([id.toString('hex')]);

      const rb = await c.readBlobs(enc('ReadBlobsRequestSchema', { ids: [crypto.randomBytes(5)] }));
      expect(rb.code, rb.details).toBe(grpc.status.INVALID_ARGUMENT);
      // An upload whose blob id is 5 bytes.
      const b = blob(64);
      const up = await c.upload([enc('UploadRequestSchema', { sessionId, id: crypto.randomBytes(5), data: b, storageHash: storageHash(b) })]);
      expect(up.code, up.details).toBe(grpc.status.INVALID_ARGUMENT);
      await c.unary('CloseSession', enc('CloseSessionRequestSchema', { sessionId }));
      await healthy(c);
    } finally {
      c.close();
    }
  });

  it('a message over the limit (170 MiB) is RESOURCE_EXHAUSTED and keepd stays up', async () => {
    const c = client(agent);
    try {
      // A valid GetConfigRequest padded with an unknown field: only its size is wrong.
      const pad = 170 * MiB;
      const header = Buffer.from([0x08, 0x01, 0x7a]); // protocol_version = 1; field 15, length-delimited
      const len: number[] = [];
      for (let v = pad; ; ) {
        if (v < 0x80) {
          len.push(v);
          break;
        }
        len.push((v & 0x7f) | 0x80);
        v = Math.floor(v / 128);
      }
      const big = Buffer.concat([header, Buffer.from(len), Buffer.alloc(pad, 0x61)]);
      const r = await c.unary('GetConfig', big);
      expect(r.ok).toBe(false);
      expect((r as any).code, (r as any).details).toBe(grpc.status.RESOURCE_EXHAUSTED);
    } finally {
      c.close();
    }
    // keepd survived, and a new connection is served.
    expect(keepd.exited()).toBeUndefined();
    const again = client(agent);
    try {
      await healthy(again);
    } finally {
      again.close();
    }
  });

  it('an Upload whose storage hash does not match is DATA_LOSS and nothing of it is indexed', async () => {
    // An admin session: Offer then answers from the whole repository, so it shows what is stored.
    const c = client(admin);
    try {
      const sessionId = await openSession(c, 'raw');
      const bad = blob(4096);
      const badId = crypto.randomBytes(32);
      const wrongHash = storageHash(Buffer.concat([bad, Buffer.from([0])]));
      const up = await c.upload([enc('UploadRequestSchema', { sessionId, id: badId, data: bad, storageHash: wrongHash })]);
      expect(up.code, up.details).toBe(grpc.status.DATA_LOSS);
      expect(up.details).toMatch(/storage hash/i);
      expect(up.responses).toHaveLength(0);

      // The same bytes with their true hash are accepted (so it was the hash that was refused).
      const goodId = crypto.randomBytes(32);
      const ok = await c.upload([enc('UploadRequestSchema', { sessionId, id: goodId, data: bad, storageHash: storageHash(bad) })]);
      expect(ok.code, ok.details).toBe(grpc.status.OK);
      expect(ok.responses.map((r) => dec('UploadResponseSchema', r).stored)).toEqual([true]);
      const close = await c.unary('CloseSession', enc('CloseSessionRequestSchema', { sessionId }));
      expect(close.ok).toBe(true);

      // In a new session: the refused id is missing, the accepted one is stored.
      const s2 = await openSession(c, 'raw');
      const offer = await c.unary('Offer', enc('OfferRequestSchema', { sessionId: s2, ids: [badId, goodId] }));
      expect(offer.ok).toBe(true);
      expect(dec('OfferResponseSchema', (offer as any).body).missing.map((m: Uint8Array) => Buffer.from(m).toString('hex'))).toEqual([badId.toString('hex')]);
      await c.unary('CloseSession', enc('CloseSessionRequestSchema', { sessionId: s2 }));
      await healthy(c);
    } finally {
      c.close();
    }
    // keepd's keyless check (concurrently: LMDB is multi-process) finds the repository whole.
    const check = await keepdJson(['check', '--data', data, '--read-data']);
    expect(check.ok, JSON.stringify(check.errors)).toBe(true);
    expect(check.blobs).toBe(1);
    expect(check.blobs_read).toBe(1);
  });
  it('a batched Upload (issue 21) is acked in one message; a batch with a damaged blob, a bad id, both forms, or too many blobs is refused whole, nothing of it indexed', async () => {
    const c = client(admin);
    const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
    const entry = (n: number) => {
      const bytes = blob(n);
      return { id: crypto.randomBytes(32), data: bytes, storageHash: storageHash(bytes) };
    };
    try {
      const cfg = await c.unary('GetConfig', enc('GetConfigRequestSchema', { protocolVersion: 1 }));
      expect(dec('GetConfigResponseSchema', (cfg as any).body).batchedUploads).toBe(true);
      const sessionId = await openSession(c, 'raw');
      const good = [entry(64), entry(5000), entry(100)];
      // the first blob again at the end: the batch's own copy is not stored twice
      const ok = await c.upload([enc('UploadRequestSchema', { sessionId, blobs: [...good, good[0]] })]);
      expect(ok.code, ok.details).toBe(grpc.status.OK);
      expect(ok.responses).toHaveLength(1);
      const res = dec('UploadResponseSchema', ok.responses[0]);
      expect(res.acks.map((a: any) => [hex(a.id), a.stored, Number(a.newBytes)])).toEqual([...good.map((g) => [hex(g.id), true, g.data.length]), [hex(good[0].id), false, 0]]);

      const refused: Buffer[] = [];
      for (const bad of [
        { code: grpc.status.DATA_LOSS, why: /storage hash/i, blobs: [entry(100), { ...entry(100), storageHash: crypto.randomBytes(32) }] },
        { code: grpc.status.INVALID_ARGUMENT, why: /batched blob 1: blob id must be 32 bytes/, blobs: [entry(100), { ...entry(100), id: crypto.randomBytes(31) }] },
        { code: grpc.status.INVALID_ARGUMENT, why: /one blob or a batch/, blobs: [entry(100)], single: entry(100) },
        { code: grpc.status.INVALID_ARGUMENT, why: /batch of 1025 blobs is over the limit of 1024/, blobs: Array.from({ length: 1025 }, () => entry(64)) },
      ]) {
        const up = await c.upload([enc('UploadRequestSchema', { sessionId, blobs: bad.blobs, ...(bad.single ?? {}) })]);
        expect(up.code, up.details).toBe(bad.code);
        expect(up.details).toMatch(bad.why);
        expect(up.responses).toHaveLength(0);
        refused.push(...bad.blobs.map((b) => b.id).filter((id) => id.length === 32), ...(bad.single ? [bad.single.id] : []));
      }
      expect((await c.unary('CloseSession', enc('CloseSessionRequestSchema', { sessionId }))).ok).toBe(true);

      // In a new session: every blob of a refused batch is missing, the accepted batch is stored.
      const s2 = await openSession(c, 'raw');
      const offer = await c.unary('Offer', enc('OfferRequestSchema', { sessionId: s2, ids: [...good.map((g) => g.id), ...refused] }));
      expect(offer.ok).toBe(true);
      expect(dec('OfferResponseSchema', (offer as any).body).missing.map(hex)).toEqual(refused.map(hex));
      await c.unary('CloseSession', enc('CloseSessionRequestSchema', { sessionId: s2 }));
      await healthy(c);
    } finally {
      c.close();
    }
  });
});
