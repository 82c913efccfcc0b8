import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  BlobSpan,
  chunkId,
  deriveKeys,
  FOOTER_SIZE,
  newMasterKey,
  openBlob,
  PACK_APPEND_BYTES,
  PACK_HEADER_SIZE,
  PACK_MAGIC,
  PackEntry,
  packPath,
  PackWriter,
  readStoredAt,
  readTrailer,
  sealData,
  sealTree,
  storageHash,
  toHex,
  TRAILER_ENTRY_SIZE,
  TRAILER_MAGIC,
} from '@keep/core';
import { BlobType, compressibleBytes, expectKeepError, flipByteInFile, seededBytes, tempDir } from './util.js';

const keys = deriveKeys(newMasterKey());
const salt = crypto.randomBytes(16);

interface Written {
  file: string;
  entries: PackEntry[];
  blobs: { id: Buffer; stored: Buffer; plain: Buffer }[];
  size: number;
}

/** One blob's bytes, read and proven (readStoredAt without the hash). */
const readBlob = async (file: string, e: BlobSpan) => (await readStoredAt(file, e)).bytes;

describe('pack files', () => {
  let t: ReturnType<typeof tempDir>;
  let tmpDir: string;
  let packsDir: string;
  beforeAll(() => {
    t = tempDir('pack');
    tmpDir = path.join(t.dir, 'tmp');
    packsDir = path.join(t.dir, 'packs');
  });
  afterAll(() => t.cleanup());
  beforeEach(() => {
    fs.rmSync(tmpDir, { recursive: true, force: true });
    fs.rmSync(packsDir, { recursive: true, force: true });
    fs.mkdirSync(tmpDir, { recursive: true });
    fs.mkdirSync(packsDir, { recursive: true });
  });

  /** A real pack: data blobs of assorted sizes plus one tree naming them. */
  function writePack(n = 6): Written {
    const w = new PackWriter(tmpDir, packsDir);
    const blobs: Written['blobs'] = [];
    for (let i = 0; i < n; i++) {
      const plain = i % 2 ? compressibleBytes(1000 + i * 7919) : seededBytes(`pack-blob-${i}`, 500 + i * 30011);
      const id = chunkId(keys, plain);
      const stored = sealData(keys, salt, id, plain, 'low');
      w.add(id, BlobType.Data, stored);
      blobs.push({ id, stored, plain });
    }
    const payload = Buffer.from('tree payload');
    const tree = sealTree(keys, salt, blobs.map((b) => ({ type: BlobType.Data, id: b.id })), payload, 'none');
    // Caller-supplied hash (the server passes one it verified).
    w.add(tree.id, BlobType.Tree, tree.bytes, storageHash(tree.bytes));
    blobs.push({ id: tree.id, stored: tree.bytes, plain: payload });
    expect(w.count).toBe(n + 1);
    // Unfinished: only under tmp/.
    expect(fs.readdirSync(tmpDir)).toEqual([`${w.id}.pack.tmp`]);
    expect(fs.existsSync(packPath(packsDir, w.id))).toBe(false);
    const done = w.finish();
    const file = packPath(packsDir, w.id);
    return { file, entries: done.entries, blobs, size: done.size };
  }

  it('PackWriter + readTrailer + readStoredAt round-trip', async () => {
    const p = writePack();
    expect(fs.readdirSync(tmpDir)).toEqual([]);
    expect(path.basename(path.dirname(p.file))).toBe(path.basename(p.file).slice(0, 2));
    expect(fs.statSync(p.file).size).toBe(p.size);
    const head = fs.readFileSync(p.file).subarray(0, PACK_HEADER_SIZE);
    expect(head.subarray(0, 8).equals(PACK_MAGIC)).toBe(true);
    expect(head.readUInt32BE(8)).toBe(1);
    expect(p.size).toBe(PACK_HEADER_SIZE + p.blobs.reduce((s, b) => s + b.stored.length, 0) + p.blobs.length * TRAILER_ENTRY_SIZE + FOOTER_SIZE);

    const trailer = await readTrailer(p.file);
    expect(trailer).toHaveLength(p.blobs.length);
    let offset = PACK_HEADER_SIZE;
    trailer.forEach((e, i) => {
      const b = p.blobs[i];
      expect(toHex(e.id)).toBe(toHex(b.id));
      expect(e.type).toBe(i === p.blobs.length - 1 ? BlobType.Tree : BlobType.Data);
      expect(e.offset).toBe(offset);
      expect(e.length).toBe(b.stored.length);
      expect(e.hash.equals(storageHash(b.stored))).toBe(true);
      offset += e.length;
    });
    expect(trailer).toEqual(p.entries);

    for (const [i, e] of trailer.entries()) {
      const got = await readBlob(p.file, e);
      expect(got.equals(p.blobs[i].stored)).toBe(true);
      expect(openBlob(keys, e.id, got).plaintext.equals(p.blobs[i].plain)).toBe(true);
    }
  });

  it('an empty pack is valid', async () => {
    const w = new PackWriter(tmpDir, packsDir);
    const done = w.finish();
    expect(await readTrailer(packPath(packsDir, done.id))).toEqual([]);
    expect(done.size).toBe(PACK_HEADER_SIZE + FOOTER_SIZE);
  });

  it('a truncated pack is CORRUPT and the message says truncated', async () => {
    const p = writePack();
    const full = fs.readFileSync(p.file);
    const last = p.entries[p.entries.length - 1];
    for (const len of [0, 10, PACK_HEADER_SIZE + FOOTER_SIZE - 1, p.entries[2].offset + 5, last.offset + last.length + 3, full.length - 1]) {
      fs.writeFileSync(p.file, full.subarray(0, len));
      const e = await expectKeepError(() => readTrailer(p.file), 'CORRUPT');
      expect(e.message, `length ${len}`).toMatch(/truncated/);
    }
    // Reading a blob past the new end names the blob and says truncated.
    fs.writeFileSync(p.file, full.subarray(0, p.entries[2].offset + 5));
    const e2 = p.entries[2];
    const err = await expectKeepError(() => readBlob(p.file, e2), 'CORRUPT');
    expect(err.message).toContain(toHex(e2.id));
    expect(err.message).toMatch(/truncated/);
    // Blobs before the cut still read fine.
    const e0 = p.entries[0];
    expect((await readBlob(p.file, e0)).equals(p.blobs[0].stored)).toBe(true);
  });

  it('a flipped byte in a blob makes readStoredAt fail CORRUPT naming that blob; the others still read', async () => {
    const p = writePack();
    const victim = p.entries[3];
    flipByteInFile(p.file, victim.offset + Math.floor(victim.length / 2));
    const err = await expectKeepError(() => readBlob(p.file, victim), 'CORRUPT');
    expect(err.message).toContain(toHex(victim.id));
    expect(err.message).toMatch(/damaged/);
    for (const e of p.entries) {
      if (e === victim) continue;
      expect((await readBlob(p.file, e)).length).toBe(e.length);
    }
    // The trailer is intact, so the pack's listing still parses.
    expect(await readTrailer(p.file)).toHaveLength(p.entries.length);
  });

  it('a missing pack is CORRUPT naming the blob', async () => {
    const p = writePack(1);
    fs.rmSync(p.file);
    const e = p.entries[0];
    const err = await expectKeepError(() => readBlob(p.file, e), 'CORRUPT');
    expect(err.message).toContain(toHex(e.id));
    expect(err.message).toMatch(/missing/);
  });

  it('damage to the trailer, its count, checksum or magic, or the header magic is detected', async () => {
    const p = writePack();
    const full = fs.readFileSync(p.file);
    const tstart = full.length - FOOTER_SIZE - p.entries.length * TRAILER_ENTRY_SIZE;
    const cases: [string, number, RegExp][] = [
      ['entry id', tstart + 5, /checksum/],
      ['entry offset', tstart + TRAILER_ENTRY_SIZE + 35, /checksum/],
      ['entry length', tstart + 2 * TRAILER_ENTRY_SIZE + 40, /checksum/],
      ['entry hash', tstart + 3 * TRAILER_ENTRY_SIZE + 50, /checksum/],
      ['count', full.length - FOOTER_SIZE + 3, /checksum|more than fit/],
      ['count high byte', full.length - FOOTER_SIZE, /more than fit/],
      ['trailer checksum', full.length - FOOTER_SIZE + 10, /checksum/],
      ['trailer magic', full.length - 2, /no trailer/],
      ['header magic', 1, /not a Keep pack/],
    ];
    for (const [what, at, msg] of cases) {
      const bad = Buffer.from(full);
      bad[at] ^= 0xff;
      fs.writeFileSync(p.file, bad);
      const e = await expectKeepError(() => readTrailer(p.file), 'CORRUPT');
      expect(e.message, what).toMatch(msg);
    }
    fs.writeFileSync(p.file, full);
    expect(await readTrailer(p.file)).toHaveLength(p.entries.length);
  });

  it('a trailer entry pointing outside the pack is refused even with a valid checksum', async () => {
    const p = writePack(2);
    const full = fs.readFileSync(p.file);
    const n = p.entries.length;
    const tstart = full.length - FOOTER_SIZE - n * TRAILER_ENTRY_SIZE;
    const t = Buffer.from(full.subarray(tstart, tstart + n * TRAILER_ENTRY_SIZE));
    t.writeUInt32BE(tstart, 33 + TRAILER_ENTRY_SIZE); // entry 1 now starts at the trailer
    const forged = Buffer.concat([full.subarray(0, tstart), t, full.subarray(tstart + t.length, tstart + t.length + 4), storageHash(t), TRAILER_MAGIC]);
    expect(forged.length).toBe(full.length);
    fs.writeFileSync(p.file, forged);
    expect((await expectKeepError(() => readTrailer(p.file), 'CORRUPT')).message).toMatch(/entry 1 points outside/);
  });

  it('an unfinished pack has no trailer; abandon removes it', async () => {
    const w = new PackWriter(tmpDir, packsDir);
    // a blob as large as a whole append goes to the file at once
    const plain = seededBytes('unfinished', PACK_APPEND_BYTES);
    const id = chunkId(keys, plain);
    w.add(id, BlobType.Data, sealData(keys, salt, id, plain, 'none'));
    const tmpFile = path.join(tmpDir, `${w.id}.pack.tmp`);
    expect(fs.statSync(tmpFile).size).toBeGreaterThan(PACK_APPEND_BYTES);
    expect((await expectKeepError(() => readTrailer(tmpFile), 'CORRUPT')).message).toMatch(/no trailer|truncated/);
    w.abandon();
    expect(fs.existsSync(tmpFile)).toBe(false);
    expect(fs.readdirSync(packsDir)).toEqual([]);
  });

  it('small blobs are gathered and appended up to PACK_APPEND_BYTES at a time; the finished pack holds every one', async () => {
    const w = new PackWriter(tmpDir, packsDir);
    const tmpFile = path.join(tmpDir, `${w.id}.pack.tmp`);
    const blobs: { id: Buffer; stored: Buffer }[] = [];
    const sizes = new Set<number>();
    for (let i = 0; i < 600; i++) {
      const plain = seededBytes(`small-${i}`, 3000 + (i % 7) * 500);
      const id = chunkId(keys, plain);
      const stored = sealData(keys, salt, id, plain, 'none');
      w.add(id, BlobType.Data, stored);
      blobs.push({ id, stored });
      sizes.add(fs.statSync(tmpFile).size);
    }
    // ~2.3 MB of blobs reached the file in two appends (one per PACK_APPEND_BYTES gathered), not one per blob
    expect([...sizes].sort((a, b) => a - b)).toHaveLength(3);
    expect(Math.min(...sizes)).toBe(PACK_HEADER_SIZE);
    expect(w.bytes).toBeGreaterThan(Math.max(...sizes));
    const done = w.finish();
    const trailer = await readTrailer(packPath(packsDir, done.id));
    expect(trailer.map((e) => toHex(e.id))).toEqual(blobs.map((b) => toHex(b.id)));
    for (const [i, e] of trailer.entries()) expect((await readBlob(packPath(packsDir, done.id), e)).equals(blobs[i].stored)).toBe(true);
  });
});
