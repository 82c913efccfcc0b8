import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { chunkBuffer, chunkingFor, chunkStream, ChunkerParams, DEFAULT_CHUNKER, deriveKeys, isChunkBuffer, keepChunkSpares, newMasterKey, recycleChunkBuffer, StreamChunker, validateChunkerParams } from '@keep/core';
import { expectKeepError, get_chunks, seededBytes, tempDir } from './util.js';

const MiB = 1024 * 1024;
const P = DEFAULT_CHUNKER;

/** Reference: one get_chunks call over the whole input. */
function referenceLengths(data: Buffer, p: ChunkerParams): number[] {
  const b = get_chunks(data, p.min, p.avg, p.max);
  const out: number[] = [];
  for (let i = 0; i + 1 < b.length; i++) out.push(b[i + 1] - b[i]);
  return out;
}

/** Feed `data` to a StreamChunker in pieces of `piece` bytes (or the sizes `piece` yields). */
function chunkInPieces(data: Buffer, p: ChunkerParams, piece: number | (() => number)): Buffer[] {
  const c = new StreamChunker(p);
  const chunks: Buffer[] = [];
  let o = 0;
  while (o < data.length) {
    const n = typeof piece === 'number' ? piece : piece();
    // Pass plain Uint8Array views, as a stream might, not Buffers.
    for (const ch of c.push(new Uint8Array(data.buffer, data.byteOffset + o, Math.min(n, data.length - o)))) chunks.push(ch);
    o += n;
  }
  for (const ch of c.finish()) chunks.push(ch);
  return chunks;
}

function expectWellFormed(chunks: Buffer[], data: Buffer, p: ChunkerParams): void {
  expect(chunks.reduce((s, c) => s + c.length, 0)).toBe(data.length);
  chunks.forEach((c, i) => {
    expect(c.length).toBeLessThanOrEqual(p.max);
    if (i < chunks.length - 1) expect(c.length).toBeGreaterThanOrEqual(p.min);
    else expect(c.length).toBeGreaterThan(0);
  });
  // Chunks handed out earlier must not have been overwritten by later pushes.
  expect(Buffer.concat(chunks).equals(data)).toBe(true);
}

describe('StreamChunker: cut points do not depend on how the input arrives', () => {
  const data = seededBytes('chunker-40MiB', 40 * MiB);
  let ref: number[];

  beforeAll(() => {
    ref = referenceLengths(data, P);
  });

  it('reference chunking is sane (many chunks, within bounds)', () => {
    // Near the average size over 40 MiB: many chunks, not one per max (nor one per min).
    const expected = data.length / P.avg;
    expect(ref.length).toBeGreaterThan(expected / 2);
    expect(ref.length).toBeLessThan(expected * 2);
    expect(ref.reduce((a, b) => a + b, 0)).toBe(data.length);
    // Random data should not be cut at max every time.
    expect(ref.filter((l) => l === P.max).length).toBeLessThan(ref.length / 2);
  });

  for (const piece of [1000, 4096, 64 * 1024, 1 * MiB, 7 * MiB, 2 * P.max, 2 * P.max + 1, 40 * MiB]) {
    it(`pieces of ${piece} bytes give the reference chunks`, () => {
      const chunks = chunkInPieces(data, P, piece);
      expect(chunks.map((c) => c.length)).toEqual(ref);
      expectWellFormed(chunks, data, P);
    });
  }

  it('random piece sizes (1 byte .. 3 MiB) give the reference chunks', () => {
    let s = 0x9e3779b9;
    const next = () => {
      // xorshift32: deterministic, spread over small and large pieces
      s ^= s << 13;
      s ^= s >>> 17;
      s ^= s << 5;
      const r = (s >>> 0) % 1000;
      return r < 300 ? 1 + (r % 7) : r < 700 ? 1 + ((s >>> 8) % 65536) : 1 + ((s >>> 4) % (3 * MiB));
    };
    const chunks = chunkInPieces(data, P, next);
    expect(chunks.map((c) => c.length)).toEqual(ref);
    expectWellFormed(chunks, data, P);
  });

  it('1-byte pieces give the reference chunks', () => {
    const chunks = chunkInPieces(data, P, 1);
    expect(chunks.map((c) => c.length)).toEqual(ref);
    expectWellFormed(chunks, data, P);
  });

  it('small chunker parameters: 1-byte pieces agree with the reference too', () => {
    const small: ChunkerParams = { min: 2048, avg: 8192, max: 32768 };
    const d = data.subarray(0, 3 * MiB);
    const r = referenceLengths(d, small);
    expect(r.length).toBeGreaterThan(100);
    const chunks = chunkInPieces(d, small, 1);
    expect(chunks.map((c) => c.length)).toEqual(r);
    expectWellFormed(chunks, d, small);
  });

  it('inserting one byte in the middle changes only the chunks around it', () => {
    const mid = data.length >> 1;
    const edited = Buffer.concat([data.subarray(0, mid), Buffer.of(0x5a), data.subarray(mid)]);
    const hash = (c: Buffer) => crypto.createHash('sha256').update(c).digest('hex');
    const before = new Set(chunkInPieces(data, P, 64 * 1024).map(hash));
    const after = chunkInPieces(edited, P, 64 * 1024);
    expectWellFormed(after, edited, P);
    const changed = after.filter((c) => !before.has(hash(c))).length;
    expect(after.length).toBeGreaterThan(20);
    // The chunk holding the new byte must differ; the rest re-synchronise.
    expect(changed).toBeGreaterThanOrEqual(1);
    expect(changed).toBeLessThanOrEqual(3);
  });
});

/**
 * The keyed chunker's rules written plainly (gear-cdc.ts runs them unrolled):
 * no cut in the first `min` bytes, which are not hashed; a 32-bit gear
 * fingerprint; one mask bit more than log2(avg) up to `avg`, one fewer after;
 * a cut at `max` at the latest; each cut after the byte that zeroes the mask.
 */
function plainKeyedLengths(data: Buffer, p: ChunkerParams, gear: Int32Array): number[] {
  const bits = Math.round(Math.log2(p.avg));
  const high = (n: number) => Number((((1n << BigInt(n)) - 1n) << BigInt(32 - n)) & 0xffffffffn);
  const out: number[] = [];
  for (let start = 0; start < data.length; ) {
    const rest = data.length - start;
    let len = rest <= p.min ? rest : Math.min(rest, p.max);
    if (rest > p.min) {
      let h = 0;
      for (let i = p.min; i < Math.min(rest, p.max); i++) {
        h = (h * 2 + gear[data[start + i]]) >>> 0;
        if ((h & high(i < p.avg ? bits + 1 : bits - 1)) >>> 0 === 0) {
          len = i + 1;
          break;
        }
      }
    }
    out.push(len);
    start += len;
  }
  return out;
}

describe('keyed chunking (new repositories): cut points from a gear table derived from the master key', () => {
  const data = seededBytes('keyed-chunker-24MiB', 24 * MiB);
  const keys = deriveKeys(newMasterKey());
  const K = chunkingFor({ ...P, keyed: true }, keys);
  let ref: number[];

  beforeAll(() => {
    ref = plainKeyedLengths(data, K, keys.chunkerGear);
  });

  it('follows the rules, in any pieces the input arrives in, within the bounds', () => {
    const expected = data.length / P.avg;
    expect(ref.length).toBeGreaterThan(expected / 2);
    expect(ref.length).toBeLessThan(expected * 2);
    for (const piece of [1, 4096, 1 * MiB + 3, 2 * P.max + 1, 24 * MiB]) {
      const chunks = chunkInPieces(piece === 1 ? data.subarray(0, 3 * MiB) : data, K, piece);
      expect(chunks.map((c) => c.length), `pieces of ${piece}`).toEqual(piece === 1 ? plainKeyedLengths(data.subarray(0, 3 * MiB), K, keys.chunkerGear) : ref);
    }
    expectWellFormed(chunkInPieces(data, K, 64 * 1024), data, K);
  });

  it('another key cuts the same bytes elsewhere, the same key always alike, the public table elsewhere again', () => {
    const lengths = (p: ChunkerParams) => chunkInPieces(data, p, MiB).map((c) => c.length);
    expect(lengths(chunkingFor({ ...P, keyed: true }, keys))).toEqual(ref);
    const other = lengths(chunkingFor({ ...P, keyed: true }, deriveKeys(newMasterKey())));
    expect(other).not.toEqual(ref);
    // Not one cut in common past the first chunks: nothing to line up a guessed file against.
    const cuts = (l: number[]) => new Set(l.map((_, i) => l.slice(0, i + 1).reduce((a, b) => a + b, 0)));
    const mine = cuts(ref);
    expect([...cuts(other)].filter((c) => mine.has(c) && c !== data.length).length).toBeLessThanOrEqual(1);
    expect(lengths(P)).toEqual(referenceLengths(data, P));
    expect(lengths(P)).not.toEqual(ref);
  });

  it('re-synchronises after an inserted byte, and refuses to run without its table', async () => {
    const mid = data.length >> 1;
    const edited = Buffer.concat([data.subarray(0, mid), Buffer.of(0x5a), data.subarray(mid)]);
    const hash = (c: Buffer) => crypto.createHash('sha256').update(c).digest('hex');
    const before = new Set(chunkInPieces(data, K, 64 * 1024).map(hash));
    const after = chunkInPieces(edited, K, 64 * 1024);
    const changed = after.filter((c) => !before.has(hash(c))).length;
    expect(changed).toBeGreaterThanOrEqual(1);
    expect(changed).toBeLessThanOrEqual(3);
    await expectKeepError(() => new StreamChunker({ ...P, keyed: true }), 'INTERNAL');
  });
});

describe('StreamChunker: edge cases', () => {
  it('empty input gives no chunks', () => {
    const c = new StreamChunker(P);
    expect(c.push(new Uint8Array(0))).toEqual([]);
    expect(c.finish()).toEqual([]);
  });

  it('input shorter than min is one chunk', () => {
    const d = seededBytes('short', 1000);
    const c = new StreamChunker(P);
    expect(c.push(d)).toEqual([]);
    const out = c.finish();
    expect(out).toHaveLength(1);
    expect(out[0].equals(d)).toBe(true);
  });

  it('a small input costs about its own size, not a max-sized window', () => {
    // One chunker per file: a 100 KiB file must not pin an 8 MiB buffer through its chunk.
    const d = seededBytes('small-file', 100 * 1024);
    const c = new StreamChunker(P);
    expect(c.push(d.subarray(0, 60 * 1024))).toEqual([]);
    expect(c.push(d.subarray(60 * 1024))).toEqual([]);
    const [only] = c.finish();
    expect(only.equals(d)).toBe(true);
    expect(only.buffer.byteLength).toBeLessThanOrEqual(2 * d.length);
  });

  it('all-zero input is cut at max', () => {
    const d = Buffer.alloc(10 * MiB);
    const chunks = chunkInPieces(d, P, 100_000);
    const full = Math.floor(d.length / P.max);
    const rest = d.length - full * P.max;
    expect(chunks.map((c) => c.length)).toEqual([...Array<number>(full).fill(P.max), ...(rest ? [rest] : [])]);
  });

  it('the caller may reuse its buffer after push', () => {
    const d = seededBytes('reuse', 12 * MiB);
    const c = new StreamChunker(P);
    const chunks: Buffer[] = [];
    const scratch = Buffer.alloc(65536);
    for (let o = 0; o < d.length; o += scratch.length) {
      d.copy(scratch, 0, o, o + scratch.length);
      chunks.push(...c.push(scratch));
      scratch.fill(0xee);
    }
    chunks.push(...c.finish());
    expect(chunks.map((x) => x.length)).toEqual(referenceLengths(d, P));
    expect(Buffer.concat(chunks).equals(d)).toBe(true);
  });

  it('rejects bad parameters', async () => {
    await expectKeepError(() => validateChunkerParams({ min: 32, avg: 64, max: 128 }), 'INVALID_ARGUMENT');
    await expectKeepError(() => validateChunkerParams({ min: 4096, avg: 1024, max: 8192 }), 'INVALID_ARGUMENT');
    await expectKeepError(() => validateChunkerParams({ min: 1024, avg: 4096, max: 128 * MiB }), 'INVALID_ARGUMENT');
    await expectKeepError(() => new StreamChunker({ min: 1.5, avg: 4096, max: 8192 }), 'INVALID_ARGUMENT');
    expect(validateChunkerParams(P)).toEqual(P);
  });

  it('sizes validation accepts are sizes fastcdc can chunk with; the ones it would crash on are refused', async () => {
    const d = seededBytes('tiny-params', 200_000);
    for (const p of [
      { min: 64, avg: 256, max: 1024 },
      { min: 1024, avg: 1024, max: 1024 },
      { min: 1000, avg: 3000, max: 10_000 },
      { min: 64, avg: 256, max: 64 * MiB },
    ]) {
      expect(validateChunkerParams(p)).toEqual(p);
      const chunks = chunkInPieces(d, p, 4096);
      expect(chunks.map((c) => c.length)).toEqual(referenceLengths(d, p));
      expectWellFormed(chunks, d, p);
    }
    for (const p of [
      { min: 64, avg: 64, max: 64 },
      { min: 64, avg: 128, max: 512 },
      { min: 64, avg: 255, max: 1024 },
      { min: 64, avg: 256, max: 1023 },
      { min: 63, avg: 256, max: 1024 },
    ]) {
      await expectKeepError(() => validateChunkerParams(p), 'INVALID_ARGUMENT');
      await expectKeepError(() => new StreamChunker(p), 'INVALID_ARGUMENT');
    }
  });
});

describe('chunkStream over real files', () => {
  const data = seededBytes('chunkstream-file', 24 * MiB + 12345);
  let t: ReturnType<typeof tempDir>;
  let file: string;
  let ref: number[];

  beforeAll(() => {
    t = tempDir('chunkstream');
    file = path.join(t.dir, 'input.bin');
    fs.writeFileSync(file, data);
    ref = referenceLengths(data, P);
  });
  afterAll(() => t.cleanup());

  for (const hwm of [1000, 16 * 1024, 64 * 1024, 1 * MiB, 4 * MiB + 1, 32 * MiB]) {
    it(`highWaterMark ${hwm} gives the reference chunks`, async () => {
      const chunks: Buffer[] = [];
      for await (const c of chunkStream(fs.createReadStream(file, { highWaterMark: hwm }), P)) chunks.push(c);
      expect(chunks.map((c) => c.length)).toEqual(ref);
      expectWellFormed(chunks, data, P);
    });
  }
});

describe('StreamChunker.file: a file no larger than the minimum chunk', () => {
  let t: ReturnType<typeof tempDir>;
  beforeAll(() => (t = tempDir('chunk-small-file')));
  afterAll(() => t.cleanup());
  const write = (name: string, d: Buffer) => {
    const f = path.join(t.dir, name);
    fs.writeFileSync(f, d);
    return f;
  };

  it('is read straight into the chunk buffer it is returned in (no copy out of a window)', () => {
    const d = seededBytes('small-direct', 5000);
    const f = write('direct', d);
    const reads = vi.spyOn(fs, 'readSync');
    try {
      const out = StreamChunker.file(f, P, d.length);
      expect(out).toHaveLength(1);
      expect(out[0].equals(d)).toBe(true);
      expect(isChunkBuffer(out[0])).toBe(true);
      // every read went into the chunk's own ArrayBuffer
      expect(reads.mock.calls.length).toBeGreaterThan(0);
      for (const call of reads.mock.calls) expect((call[1] as Uint8Array).buffer).toBe(out[0].buffer);
    } finally {
      reads.mockRestore();
    }
  });

  it('that shrank since its lstat is the bytes still there; that grew is chunked whole', () => {
    const d = seededBytes('small-changed', P.min - 200);
    const f = write('changed', d);
    const shrunk = StreamChunker.file(f, P, d.length + 100);
    expect(Buffer.concat(shrunk).equals(d)).toBe(true);
    const big = seededBytes('small-grown', 3 * P.max);
    const g = write('grown', big);
    const grown = StreamChunker.file(g, P, 1000);
    expect(grown.length).toBeGreaterThan(1);
    expect(Buffer.concat(grown).equals(big)).toBe(true);
    expect(grown.map((c) => c.length)).toEqual(referenceLengths(big, P));
    expect(StreamChunker.file(write('empty', Buffer.alloc(0)), P, 10)).toEqual([]);
  });
});

describe('chunk buffer spares', () => {
  it('keeps a whole WAL segment of spares once asked (keepChunkSpares): the next segment reads into the same buffers, all 16', () => {
    const MiB = 1 << 20;
    const first = Array.from({ length: 16 }, () => chunkBuffer(MiB));
    const seen = new Set(first.map((b) => b.buffer));
    keepChunkSpares(16 * first[0].buffer.byteLength);
    for (const b of first) recycleChunkBuffer(b.buffer);
    const next = Array.from({ length: 16 }, () => chunkBuffer(MiB));
    expect(next.filter((b) => seen.has(b.buffer)).length).toBe(16);
    // never more than the ceiling, whoever asks: a 1 GiB segment does not pin 1 GiB of spares
    keepChunkSpares(1 << 30);
    const huge = Array.from({ length: 40 }, () => chunkBuffer(MiB));
    for (const b of [...next, ...huge]) recycleChunkBuffer(b.buffer);
    const again = Array.from({ length: 56 }, () => chunkBuffer(MiB));
    expect(again.filter((b) => seen.has(b.buffer) || huge.some((h) => h.buffer === b.buffer)).length).toBeLessThanOrEqual(32);
  });
});
