/**
 * The agent's own side of the bulk streams and the buffers around them:
 * ReadBlobs responses decoded as their bytes arrive (each blob in a buffer of
 * its own), upload messages framed in the blob's room, blobs opened in place
 * by the restore's worker, the restore's read-ahead bounded in bytes, and the
 * chunk buffer pool bounded. A restore through keepd (restore-grpc-read and
 * backup-pipeline tests) runs all of it end to end.
 */
import crypto from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { chunkWindow, LARGE_AHEAD_BYTES } from '@keep/agent/dist/restore/restorer.js';
import { encodeReadBlobsMany, encodeReadBlobsSingle, FRAME_PREFIX, FrameSplitter, ReadBlobsParser, UploadEncoder } from '@keep/proto';
import { BLOB_ROOM, chunkBuffer, chunkId, deriveKeys, newMasterKey, openBlob, openBlobInPlace, OpenScratch, recycleChunkBuffer, sealData, sealTree, storageHash } from '@keep/core';
import { prng } from './helpers.js';
import { wire } from './keepd-harness.js';

const MiB = 1024 * 1024;
/** BlobType (a const enum: no runtime object) */
const DATA = 0;
const TREE = 1;

/** `bytes` cut into pieces of the sizes `cut` returns, in order. */
function pieces(bytes: Buffer, cut: (i: number) => number): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0, i = 0; at < bytes.length; i++) {
    const n = Math.max(1, Math.min(cut(i), bytes.length - at));
    out.push(bytes.subarray(at, at + n));
    at += n;
  }
  return out;
}

const frame = (msg: Uint8Array): Buffer => {
  const b = Buffer.alloc(FRAME_PREFIX + msg.length);
  b.writeUInt32BE(msg.length, 1);
  b.set(msg, FRAME_PREFIX);
  return b;
};

describe('ReadBlobs responses, decoded as they arrive', () => {
  let protobuf: any;
  let proto: any;
  beforeAll(async () => {
    ({ protobuf, proto } = await wire());
  });

  const blobs = [0, 1, 31, 32, 1000, 70_000, 300_000, 1_100_000].map((n, i) => ({ id: crypto.randomBytes(32), data: prng(4000 + i, n) }));

  /** The body of a response stream: several blobs per message, then the older form (one per message), then a message with fields from a later keepd. */
  function body(): { stream: Buffer; expected: typeof blobs } {
    const storedBlob = (b: (typeof blobs)[number]) => protobuf.create(proto.StoredBlobSchema, { id: b.id, data: b.data, storageHash: storageHash(b.data) });
    const gathered = protobuf.toBinary(proto.ReadBlobsResponseSchema, protobuf.create(proto.ReadBlobsResponseSchema, { blobs: blobs.slice(0, 5).map(storedBlob) }));
    const singles = blobs.slice(5, 7).map((b) => protobuf.toBinary(proto.ReadBlobsResponseSchema, protobuf.create(proto.ReadBlobsResponseSchema, { id: b.id, data: b.data, storageHash: storageHash(b.data) })));
    // Fields 9 (varint), 10 (bytes), 11 (fixed64), 12 (fixed32) around the blob, inside and outside it: skipped.
    const last = blobs[7];
    const inner = Buffer.concat([Buffer.from([0x48, 0x96, 0x01]), Buffer.from(protobuf.toBinary(proto.StoredBlobSchema, storedBlob(last))), Buffer.from([0x52, 0x03, 1, 2, 3, 0x59, 1, 2, 3, 4, 5, 6, 7, 8, 0x65, 1, 2, 3, 4])]);
    const lenBytes: number[] = [];
    for (let n = inner.length; ; n >>>= 7) {
      if (n < 0x80) {
        lenBytes.push(n);
        break;
      }
      lenBytes.push((n & 0x7f) | 0x80);
    }
    const later = Buffer.concat([Buffer.from([0x65, 9, 9, 9, 9]), Buffer.from([0x22, ...lenBytes]), inner]);
    return { stream: Buffer.concat([frame(gathered), ...singles.map(frame), frame(later)]), expected: blobs };
  }

  function decode(stream: Buffer, cut: (i: number) => number): { id: Buffer; data: Buffer }[] {
    const got: { id: Buffer; data: Buffer }[] = [];
    // The id is valid only during the call (the parser reuses its buffer): copied.
    const splitter = new FrameSplitter(new ReadBlobsParser((id, data) => got.push({ id: Buffer.from(id), data })), 160 * MiB);
    for (const p of pieces(stream, cut)) splitter.push(p);
    expect(splitter.idle).toBe(true);
    return got;
  }

  it('gives every blob, in order, whatever the chunks the bytes arrive in, each in a buffer of its own', () => {
    const { stream, expected } = body();
    const rnd = prng(99, 4096);
    for (const cut of [() => 1, () => 7, () => 16_384, () => 1 << 30, (i: number) => 1 + rnd[i % rnd.length] * 97]) {
      const got = decode(stream, cut);
      expect(got.map((b) => b.id.toString('hex'))).toEqual(expected.map((b) => b.id.toString('hex')));
      got.forEach((b, i) => {
        expect(b.data.equals(expected[i].data)).toBe(true);
        // Its own ArrayBuffer: the restore moves it to a worker without touching any other blob's bytes.
        if (b.data.length) expect([b.data.byteOffset, b.data.buffer.byteLength]).toEqual([0, b.data.length]);
      });
    }
  });

  it('refuses a message whose fields run past it, and a message larger than allowed', () => {
    const parse = (msg: Buffer) => new FrameSplitter(new ReadBlobsParser(() => undefined), 160 * MiB).push(frame(msg));
    // A StoredBlob claiming 100 bytes in a message of 10.
    expect(() => parse(Buffer.from([0x22, 100, 0x0a, 0x20, 1, 2, 3, 4, 5, 6]))).toThrow(/malformed/);
    // A data field longer than its StoredBlob.
    expect(() => parse(Buffer.from([0x22, 0x04, 0x12, 0x10, 1, 2]))).toThrow(/malformed/);
    // A message that ends inside a field.
    expect(() => parse(Buffer.from([0x0a, 0x20, 1, 2]))).toThrow(/malformed/);
    expect(() => new FrameSplitter(new ReadBlobsParser(() => undefined), 1000).push(frame(Buffer.alloc(1001)))).toThrow(/1001 bytes/);
  });
});

describe("keepd's ReadBlobs responses, encoded by hand", () => {
  it('are the bytes protobuf-es writes, in both forms, and the agent decodes them', async () => {
    const { protobuf, proto } = await wire();
    const blobs = [0, 1, 127, 128, 16_384, 300_000].map((n, i) => ({ id: crypto.randomBytes(32), data: prng(7000 + i, n), storageHash: crypto.randomBytes(32) }));
    const reference = (fields: object) => Buffer.from(protobuf.toBinary(proto.ReadBlobsResponseSchema, protobuf.create(proto.ReadBlobsResponseSchema, fields)));
    const many = encodeReadBlobsMany(blobs);
    expect(many.equals(reference({ blobs: blobs.map((b) => protobuf.create(proto.StoredBlobSchema, b)) }))).toBe(true);
    for (const b of blobs) expect(encodeReadBlobsSingle(b).equals(reference(b))).toBe(true);
    // The service definition sends encoded bytes as they are, and still encodes message objects.
    const serialize = proto.grpcServiceDefinition(proto.RepositoryService).readBlobs.responseSerialize;
    expect(serialize(many)).toEqual(many);
    expect(serialize(protobuf.create(proto.ReadBlobsResponseSchema, blobs[2])).equals(encodeReadBlobsSingle(blobs[2]))).toBe(true);
    const got: { id: string; data: Buffer }[] = [];
    const splitter = new FrameSplitter(new ReadBlobsParser((id, data) => got.push({ id: Buffer.from(id).toString('hex'), data })), 160 * MiB);
    splitter.push(Buffer.concat([frame(many), ...blobs.map((b) => frame(encodeReadBlobsSingle(b)))]));
    expect(got.map((g) => g.id)).toEqual([...blobs, ...blobs].map((b) => b.id.toString('hex')));
    got.forEach((g, i) => expect(g.data.equals(blobs[i % blobs.length].data)).toBe(true));
  });
});

describe('upload messages framed for the stream', () => {
  it('carry the gRPC prefix and the encoded request, in the blob buffer itself when it has room', () => {
    const keys = deriveKeys(newMasterKey());
    const enc = new UploadEncoder('0123456789abcdef0123456789abcdef');
    for (const size of [0, 100, 300_000]) {
      const plain = crypto.randomBytes(size);
      const id = chunkId(keys, plain);
      const roomy = sealData(keys, crypto.randomBytes(16), id, plain, 'none', BLOB_ROOM);
      for (const blob of [{ id, bytes: roomy, roomy: true }, { id, bytes: Buffer.from(roomy) }]) {
        const framed = enc.frame(blob);
        expect(framed[0]).toBe(0);
        expect(framed.readUInt32BE(1)).toBe(framed.length - FRAME_PREFIX);
        expect(framed.subarray(FRAME_PREFIX).equals(enc.encode(blob))).toBe(true);
      }
      expect(enc.frame({ id, bytes: roomy, roomy: true }).buffer).toBe(roomy.buffer);
    }
  });
});

describe('blobs opened in place', () => {
  const keys = deriveKeys(newMasterKey());
  const salt = crypto.randomBytes(16);

  it('open to what openBlob gives, compressed or not, and a damaged blob is refused', () => {
    const scratch = new OpenScratch();
    const text = Buffer.from('a line of text that compresses well\n'.repeat(60_000));
    for (const [plain, compression] of [
      [text, 'medium'],
      [prng(5, 3 * MiB), 'medium'],
      [text.subarray(0, 100), 'none'],
      [Buffer.alloc(0), 'low'],
    ] as const) {
      const id = chunkId(keys, plain);
      const stored = sealData(keys, salt, id, plain, compression);
      const expected = openBlob(keys, id, stored).plaintext;
      const own = Buffer.from(stored);
      const r = openBlobInPlace(keys, id, own, scratch);
      expect(r.type).toBe(DATA);
      expect(r.plaintext.equals(expected)).toBe(true);
      expect(r.plaintext.equals(plain)).toBe(true);
      const damaged = Buffer.from(stored);
      damaged[damaged.length >> 1] ^= 1;
      expect(() => openBlobInPlace(keys, id, damaged, scratch)).toThrow(/authentication/);
    }
    const tree = sealTree(keys, salt, [{ type: DATA, id: crypto.randomBytes(32) }], text.subarray(0, 5000), 'medium');
    const r = openBlobInPlace(keys, tree.id, Buffer.from(tree.bytes), scratch);
    expect(r.type).toBe(TREE);
    expect(r.plaintext.equals(text.subarray(0, 5000))).toBe(true);
  });
});

describe('bounds', () => {
  it("a large file's restore read-ahead is bounded in bytes, whatever its chunk sizes", () => {
    for (const [size, chunks] of [
      [1024 * MiB, 256], // max-size chunks (4 MiB)
      [1024 * MiB, 1024], // 1 MiB
      [64 * MiB, 1024], // 64 KiB
      [3 * MiB, 2],
      [64 * 1024 * MiB, 1024], // 64 MiB chunks (a repository's own chunker sizes)
    ]) {
      const w = chunkWindow(size, chunks);
      expect(w).toBeGreaterThanOrEqual(2);
      expect(w).toBeLessThanOrEqual(8);
      // At least two chunks, so reading overlaps writing; beyond that, no more than LARGE_AHEAD_BYTES.
      if (w > 2) expect(w * Math.ceil(size / chunks)).toBeLessThanOrEqual(LARGE_AHEAD_BYTES);
    }
  });

  it('the chunk buffer pool keeps at most 8 MiB, the most recently returned, and frees the rest at once', () => {
    const sizes = Array.from({ length: 14 }, () => MiB);
    const bufs = sizes.map((n) => chunkBuffer(n));
    const abs = bufs.map((b) => b.buffer);
    for (const ab of abs) recycleChunkBuffer(ab);
    // The oldest went (emptied: their memory goes at the next young collection), the newest stayed.
    const kept = abs.filter((ab) => ab.byteLength > 0);
    expect(kept.length).toBeGreaterThan(0);
    expect(kept.reduce((n, ab) => n + ab.byteLength, 0)).toBeLessThanOrEqual(8 * MiB);
    expect(abs[0].byteLength).toBe(0);
    expect(abs[abs.length - 1].byteLength).toBeGreaterThan(0);
    // Spares are given out again, also for a chunk of a smaller size class.
    const again = chunkBuffer(700_000);
    expect(kept).toContain(again.buffer);
    expect(again.length).toBe(700_000);
  });
});
