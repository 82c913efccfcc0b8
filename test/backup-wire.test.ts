/**
 * The upload path's hand-made pieces against the references they replace:
 * UploadRequests framed around a blob in place decode with protobuf-es to the
 * same fields, acks decode as protobuf-es encodes them (unknown fields too),
 * and chunks sealed in their own (recycled) buffers open like any blob.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeUploadAck, decodeUploadAcks, decodeUploadRequest, encodeUploadAck, encodeUploadBatchAck, FRAME_PREFIX, frameUploadBatch, UploadEncoder } from '@keep/proto';
import { BLOB_ROOM, chunkBuffer, chunkFile, chunkId, DEFAULT_CHUNKER, deriveKeys, isChunkBuffer, newMasterKey, openBlob, recycleChunkBuffer, sealData, SealPool, storageHash, StreamChunker } from '@keep/core';
import { wire } from './keepd-harness.js';

describe('UploadRequest / UploadResponse encoding', () => {
  let protobuf: any;
  let proto: any;
  const keys = deriveKeys(newMasterKey());
  const salt = crypto.randomBytes(16);

  beforeAll(async () => {
    ({ protobuf, proto } = await wire());
  });

  it('requests framed in the blob room or copied decode to the same fields as protobuf-es reads them', () => {
    const enc = new UploadEncoder('0123456789abcdef0123456789abcdef');
    for (const size of [0, 1, 100, 127, 128, 16_383, 16_384, 300_000, 2_100_000]) {
      const plain = crypto.randomBytes(size);
      const id = chunkId(keys, plain);
      const roomy = sealData(keys, salt, id, plain, 'none', BLOB_ROOM);
      const plainCopy = Buffer.from(roomy);
      for (const blob of [
        { id, bytes: roomy, roomy: true },
        { id, bytes: plainCopy, hash: storageHash(plainCopy) },
      ]) {
        const msg = enc.encode(blob);
        const m = protobuf.fromBinary(proto.UploadRequestSchema, msg);
        expect(m.sessionId).toBe('0123456789abcdef0123456789abcdef');
        expect(Buffer.from(m.id).equals(id)).toBe(true);
        expect(Buffer.from(m.data).equals(plainCopy)).toBe(true);
        expect(Buffer.from(m.storageHash).equals(storageHash(plainCopy))).toBe(true);
        // Byte for byte what protobuf-es writes.
        expect(Buffer.from(protobuf.toBinary(proto.UploadRequestSchema, m)).equals(msg)).toBe(true);
      }
      // Framed in place: the message is the blob's own buffer, no copy.
      expect(enc.encode({ id, bytes: roomy, roomy: true }).buffer).toBe(roomy.buffer);
    }
  });

  it('acks decode as protobuf-es encodes them, unknown fields skipped', () => {
    const id = crypto.randomBytes(32);
    for (const [stored, newBytes] of [
      [true, 0n],
      [false, 0n],
      [true, 127n],
      [true, 4_194_353n],
      [true, 2n ** 40n + 5n],
    ] as const) {
      const bin = Buffer.from(protobuf.toBinary(proto.UploadResponseSchema, protobuf.create(proto.UploadResponseSchema, { id, stored, newBytes })));
      const a = decodeUploadAck(bin);
      expect(a.id.equals(id)).toBe(true);
      expect(a.stored).toBe(stored);
      expect(a.newBytes).toBe(Number(newBytes));
      // A later keepd may add fields (varint 9, bytes 10, fixed64 11, fixed32 12): they are skipped.
      const extra = Buffer.concat([bin, Buffer.from([0x48, 0x96, 0x01, 0x52, 0x03, 1, 2, 3, 0x59, 1, 2, 3, 4, 5, 6, 7, 8, 0x65, 1, 2, 3, 4])]);
      const b = decodeUploadAck(extra);
      expect([b.id.equals(id), b.stored, b.newBytes]).toEqual([true, stored, Number(newBytes)]);
    }
    expect(() => decodeUploadAck(Buffer.from([0x0a, 0x20, 1, 2]))).toThrow(/malformed/);
  });

  it("keepd's hand decoder reads requests as protobuf-es does: unknown fields skipped, the last of a repeated field, malformed ones refused", () => {
    const enc = new UploadEncoder('0123456789abcdef0123456789abcdef');
    for (const size of [0, 1, 127, 128, 300_000]) {
      const plain = crypto.randomBytes(size);
      const id = chunkId(keys, plain);
      const bytes = sealData(keys, salt, id, plain, 'none');
      const msg = enc.encode({ id, bytes, hash: storageHash(bytes) });
      // later fields a newer agent may send (varint 9, bytes 10, fixed64 11, fixed32 12), and field 2 again
      const other = crypto.randomBytes(32);
      const extra = Buffer.concat([msg, Buffer.from([0x48, 0x96, 0x01, 0x52, 0x03, 1, 2, 3, 0x59, 1, 2, 3, 4, 5, 6, 7, 8, 0x65, 1, 2, 3, 4, 0x12, 0x20]), other]);
      for (const m of [msg, extra]) {
        const ref = protobuf.fromBinary(proto.UploadRequestSchema, m);
        const got = decodeUploadRequest(m);
        expect(got.sessionId).toBe(ref.sessionId);
        for (const f of ['id', 'data', 'storageHash'] as const) expect(Buffer.from(got[f]).equals(Buffer.from(ref[f]))).toBe(true);
      }
      expect(Buffer.from(decodeUploadRequest(extra).id).equals(other)).toBe(true);
    }
    for (const bad of [[0x08], [0x0a, 0x10, 0x01], [0x12, 0x40, 0x00], [0x48, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], [0x07, 0x00], [0x59, 1, 2]]) {
      expect(() => decodeUploadRequest(Buffer.from(bad)), Buffer.from(bad).toString('hex')).toThrow();
      expect(() => protobuf.fromBinary(proto.UploadRequestSchema, Buffer.from(bad)), Buffer.from(bad).toString('hex')).toThrow();
    }
  });

  it("keepd's hand-encoded acks are byte for byte what protobuf-es writes", () => {
    const id = crypto.randomBytes(32);
    for (const [stored, newBytes] of [
      [true, 0],
      [false, 0],
      [true, 1],
      [true, 127],
      [true, 128],
      [true, 4_194_353],
      [false, 16_777_216],
    ] as const) {
      const ref = Buffer.from(protobuf.toBinary(proto.UploadResponseSchema, protobuf.create(proto.UploadResponseSchema, { id, stored, newBytes: BigInt(newBytes) })));
      expect(encodeUploadAck({ id, stored, newBytes }).equals(ref)).toBe(true);
    }
    expect(() => decodeUploadAck(Buffer.from([0x0f]))).toThrow(/malformed/);
  });
});

describe('batched uploads (issue 21): UploadRequest.blobs and UploadResponse.acks', () => {
  let protobuf: any;
  let proto: any;
  const keys = deriveKeys(newMasterKey());
  const salt = crypto.randomBytes(16);
  const session = '0123456789abcdef0123456789abcdef';

  beforeAll(async () => {
    ({ protobuf, proto } = await wire());
  });

  it('a batch framed in pieces is byte for byte what protobuf-es writes; roomy blobs are framed in their own buffers; keepd decodes it as protobuf-es does', () => {
    const blobs = [0, 1, 127, 128, 16_383, 300_000].flatMap((size, i) => {
      const plain = crypto.randomBytes(size);
      const id = chunkId(keys, plain);
      const roomy = sealData(keys, salt, id, plain, 'none', BLOB_ROOM);
      return i % 2 ? [{ id, bytes: roomy, roomy: true }] : [{ id, bytes: roomy, roomy: true }, { id, bytes: Buffer.from(roomy), hash: storageHash(roomy) }];
    });
    const pieces = frameUploadBatch(Buffer.from(session), blobs);
    // a roomy blob's piece is its own buffer, the field headers in the room around the bytes
    blobs.forEach((b, i) => {
      const p = pieces[i + 1].bytes;
      if (b.roomy) expect([p.buffer === b.bytes.buffer, p.byteOffset < b.bytes.byteOffset, p.byteOffset + p.length > b.bytes.byteOffset + b.bytes.length]).toEqual([true, true, true]);
      expect(p.length).toBeGreaterThan(b.bytes.length);
    });
    const framed = Buffer.concat(pieces.map((p) => p.bytes));
    expect(framed[0]).toBe(0);
    expect(framed.readUInt32BE(1)).toBe(framed.length - FRAME_PREFIX);
    const msg = framed.subarray(FRAME_PREFIX);
    const ref = protobuf.fromBinary(proto.UploadRequestSchema, msg);
    expect(ref.sessionId).toBe(session);
    expect(ref.id.length + ref.data.length + ref.storageHash.length).toBe(0);
    expect(ref.blobs.map((b: any) => [Buffer.from(b.id).toString('hex'), Buffer.from(b.data).toString('hex'), Buffer.from(b.storageHash).toString('hex')])).toEqual(
      blobs.map((b) => [b.id.toString('hex'), b.bytes.toString('hex'), storageHash(b.bytes).toString('hex')]),
    );
    expect(Buffer.from(protobuf.toBinary(proto.UploadRequestSchema, ref)).equals(msg)).toBe(true);
    const got = decodeUploadRequest(msg);
    expect(got.sessionId).toBe(session);
    expect(got.blobs.length).toBe(blobs.length);
    got.blobs.forEach((b, i) => {
      for (const f of ['id', 'data', 'storageHash'] as const) expect(Buffer.from(b[f]).equals(Buffer.from(ref.blobs[i][f]))).toBe(true);
    });
    // the single form decodes with no batch
    expect(decodeUploadRequest(new UploadEncoder(session).encode(blobs[0])).blobs).toEqual([]);
    // a batched blob whose fields are malformed refuses the message, as protobuf-es does
    for (const bad of [[0x2a, 0x02, 0x0a, 0x05], [0x2a, 0x01, 0x08], [0x2d, 0, 0, 0, 0]]) {
      expect(() => decodeUploadRequest(Buffer.from(bad)), Buffer.from(bad).toString('hex')).toThrow();
      expect(() => protobuf.fromBinary(proto.UploadRequestSchema, Buffer.from(bad)), Buffer.from(bad).toString('hex')).toThrow();
    }
  });

  it("keepd's batch ack is byte for byte what protobuf-es writes, and the agent reads it and the single form alike", () => {
    const acks = ([
      [true, 0],
      [false, 0],
      [true, 127],
      [true, 128],
      [false, 16_777_216],
      [true, 4_194_353],
    ] as const).map(([stored, newBytes]) => ({ id: crypto.randomBytes(32), stored, newBytes }));
    const ref = Buffer.from(protobuf.toBinary(proto.UploadResponseSchema, protobuf.create(proto.UploadResponseSchema, { acks: acks.map((a) => ({ ...a, newBytes: BigInt(a.newBytes) })) })));
    const mine = encodeUploadBatchAck(acks);
    expect(mine.equals(ref)).toBe(true);
    expect(decodeUploadAcks(mine).map((a) => [a.id.toString('hex'), a.stored, a.newBytes])).toEqual(acks.map((a) => [a.id.toString('hex'), a.stored, a.newBytes]));
    const one = decodeUploadAcks(encodeUploadAck(acks[2]));
    expect(one.map((a) => [a.id.equals(acks[2].id), a.stored, a.newBytes])).toEqual([[true, true, 127]]);
    expect(() => decodeUploadAcks(Buffer.from([0x22, 0x05, 0x0a, 0x20]))).toThrow(/malformed/);
  });
});

describe('chunks sealed in place, buffers recycled', () => {
  const master = newMasterKey();
  const keys = deriveKeys(master);
  const pool = new SealPool(master, 1);
  const salt = crypto.randomBytes(16);
  afterAll(() => pool.close());

  /** A chunk in a chunk buffer, as the chunker hands them out. */
  function chunk(data: Buffer): Buffer {
    const b = chunkBuffer(data.length);
    b.set(data);
    expect(isChunkBuffer(b)).toBe(true);
    return b;
  }

  it('on the main thread and in the worker, every blob opens to its chunk, however its buffer was reused', async () => {
    const text = (n: number, seed: number) => Buffer.from(`chunk ${seed} ${'text that compresses well '.repeat(Math.ceil(n / 20))}`).subarray(0, n);
    // Enough rounds that the pool moves from sealing here to its worker, and buffers come back for reuse.
    for (let round = 0; round < 6; round++) {
      const plains = [0, 1, 4000, 4096, 70_000, 300_000, 1_000_000, 1_600_000].map((n, i) => (i % 2 ? crypto.randomBytes(n) : text(n, round * 10 + i)));
      const ids = plains.map((p) => chunkId(keys, p));
      const sealed = await pool.sealMany(salt, plains.map((p, i) => ({ id: ids[i], plaintext: chunk(p) })), 'medium', true);
      // Check every blob before any buffer goes back, then give them all back for the next round.
      sealed.forEach((b, i) => {
        expect(b.roomy).toBe(true);
        expect(b.hash!.equals(storageHash(b.bytes))).toBe(true);
        expect(openBlob(keys, ids[i], b.bytes).plaintext.equals(plains[i])).toBe(true);
        expect(b.bytes.byteOffset).toBeGreaterThanOrEqual(BLOB_ROOM.head);
        expect(b.bytes.buffer.byteLength - b.bytes.byteOffset - b.bytes.length).toBeGreaterThanOrEqual(BLOB_ROOM.tail);
      });
      for (const b of sealed) {
        b.release!();
        // Handing a buffer back twice must not give it to two chunks.
        b.release!();
      }
    }
    expect(pool.started).toBe(1);
  });

  it('a buffer handed back twice is given out once', () => {
    const a = chunkBuffer(5000);
    recycleChunkBuffer(a.buffer);
    recycleChunkBuffer(a.buffer);
    const b = chunkBuffer(5000);
    const c = chunkBuffer(5000);
    expect(b.buffer).toBe(a.buffer);
    expect(c.buffer).not.toBe(a.buffer);
  });

  it('buffers that are not chunk buffers are copied, never sealed in place', async () => {
    const plain = crypto.randomBytes(10_000);
    const view = Buffer.concat([Buffer.alloc(300), plain, Buffer.alloc(100)]).subarray(300, 300 + plain.length);
    expect(isChunkBuffer(view)).toBe(false);
    const id = chunkId(keys, plain);
    const [b] = await pool.sealMany(salt, [{ id, plaintext: view }], 'low', true);
    expect(view.equals(plain)).toBe(true);
    expect(b.release).toBeUndefined();
    expect(openBlob(keys, id, b.bytes).plaintext.equals(plain)).toBe(true);
  });
});

describe('StreamChunker.file (read straight into the window)', () => {
  it('cuts a file exactly as chunkFile does, every chunk in a chunk buffer', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'keep-chunk-file-'));
    try {
      for (const size of [0, 1, 200_000, 9 * 1024 * 1024 + 17]) {
        const f = path.join(dir, `f${size}`);
        fs.writeFileSync(f, crypto.randomBytes(size));
        const direct = StreamChunker.file(f, DEFAULT_CHUNKER, size);
        const streamed: Buffer[] = [];
        for await (const c of chunkFile(f, DEFAULT_CHUNKER, size)) streamed.push(c);
        expect(direct.map((c) => c.length)).toEqual(streamed.map((c) => c.length));
        expect(Buffer.concat(direct).equals(fs.readFileSync(f))).toBe(true);
        for (const c of direct) expect(isChunkBuffer(c)).toBe(true);
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
