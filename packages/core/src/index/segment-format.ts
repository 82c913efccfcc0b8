/**
 * Index segment layout — the trailers of several packs gathered in one
 * object beside the packs (index/<name>.seg), so an index rebuild reads a few
 * segments instead of every pack's trailer (one or two ranged GETs per pack
 * on object storage). Exactly what the trailers say, nothing more: pack ids,
 * sizes, blob ids, places, lengths, storage hashes and types (no plaintext,
 * no names, no owner tags).
 *
 *   offset  size   field
 *   0       8      magic "KEEPISEG"
 *   8       1      version = 1
 *   9       3      reserved = 0
 *   12      4      u32 BE pack count P
 *   16      32     BLAKE3 of the body (every byte from 48 to the end)
 *   48      ...    body: P pack records, back to back:
 *                    16  pack id (binary; the pack's name is its hex)
 *                     8  u64 BE pack size in bytes
 *                     4  u32 BE entry count N
 *                  N*73  trailer entries, pack/format.ts TRAILER_ENTRY layout
 *
 * Segments are an accelerator, never a dependency: a pack is durable and
 * readable before any segment names it, a segment may name packs prune has
 * deleted since (a rebuild takes only packs the storage lists), and a pack no
 * segment names is read by its trailer. Written create-only and never
 * changed; prune compacts stale ones into new ones (gc/segment-compaction.ts).
 */
import crypto from 'node:crypto';
import { corrupt } from '../errors.js';
import { INDEX_SEGMENT_MAGIC, INDEX_SEGMENT_SUFFIX, INDEX_SEGMENT_VERSION } from '../formats.js';
import { storageHash } from '../ids.js';
import { type PackEntry, readTrailerEntry, TRAILER_ENTRY_SIZE, writeTrailerEntry } from '../pack/format.js';

export { INDEX_SEGMENT_MAGIC, INDEX_SEGMENT_SUFFIX, INDEX_SEGMENT_VERSION };

/** Offsets in a segment's header. */
export const SEGMENT_HEADER = { magic: 0, version: 8, reserved: 9, packs: 12, checksum: 16 } as const;
export const SEGMENT_HEADER_SIZE = 48;
/** Offsets in one pack record of the body (its entries follow). */
export const SEGMENT_PACK = { id: 0, size: 16, entries: 24 } as const;
export const SEGMENT_PACK_SIZE = 28;
const PACK_ID_BYTES = 16;

/** One pack as a segment records it: what its trailer and its stored size say. */
export interface SegmentPack {
  id: string;
  size: number;
  entries: PackEntry[];
}

/** The bytes of a segment recording `packs`. */
export function encodeIndexSegment(packs: readonly SegmentPack[]): Buffer {
  const bodySize = packs.reduce((n, p) => n + SEGMENT_PACK_SIZE + p.entries.length * TRAILER_ENTRY_SIZE, 0);
  const out = Buffer.alloc(SEGMENT_HEADER_SIZE + bodySize);
  INDEX_SEGMENT_MAGIC.copy(out, SEGMENT_HEADER.magic);
  out[SEGMENT_HEADER.version] = INDEX_SEGMENT_VERSION;
  out.writeUInt32BE(packs.length, SEGMENT_HEADER.packs);
  let o = SEGMENT_HEADER_SIZE;
  for (const p of packs) {
    const id = Buffer.from(p.id, 'hex');
    if (id.length !== PACK_ID_BYTES || id.toString('hex') !== p.id) throw new Error(`pack id ${p.id} is not ${PACK_ID_BYTES} bytes of hex`);
    id.copy(out, o + SEGMENT_PACK.id);
    out.writeBigUInt64BE(BigInt(p.size), o + SEGMENT_PACK.size);
    out.writeUInt32BE(p.entries.length, o + SEGMENT_PACK.entries);
    o += SEGMENT_PACK_SIZE;
    for (const e of p.entries) writeTrailerEntry(out, o, e), (o += TRAILER_ENTRY_SIZE);
  }
  storageHash(out.subarray(SEGMENT_HEADER_SIZE)).copy(out, SEGMENT_HEADER.checksum);
  return out;
}

/** The packs segment `name` records; CORRUPT (naming the segment) when its bytes are not a whole, undamaged segment. */
export function decodeIndexSegment(bytes: Buffer, name: string): SegmentPack[] {
  const what = `index segment ${name}`;
  if (bytes.length < SEGMENT_HEADER_SIZE) throw corrupt(`${what} is truncated (${bytes.length} bytes)`);
  if (!bytes.subarray(SEGMENT_HEADER.magic, SEGMENT_HEADER.magic + INDEX_SEGMENT_MAGIC.length).equals(INDEX_SEGMENT_MAGIC)) throw corrupt(`${what} is not a Keep index segment (bad magic)`);
  const version = bytes[SEGMENT_HEADER.version];
  if (version !== INDEX_SEGMENT_VERSION) throw corrupt(`${what} has version ${version}; this build reads ${INDEX_SEGMENT_VERSION}`);
  if (!storageHash(bytes.subarray(SEGMENT_HEADER_SIZE)).equals(bytes.subarray(SEGMENT_HEADER.checksum, SEGMENT_HEADER_SIZE))) throw corrupt(`${what} is damaged (checksum mismatch)`);
  const count = bytes.readUInt32BE(SEGMENT_HEADER.packs);
  const packs: SegmentPack[] = [];
  let o = SEGMENT_HEADER_SIZE;
  for (let i = 0; i < count; i++) {
    if (o + SEGMENT_PACK_SIZE > bytes.length) throw corrupt(`${what} ends inside pack record ${i}`);
    const id = bytes.subarray(o + SEGMENT_PACK.id, o + SEGMENT_PACK.id + PACK_ID_BYTES).toString('hex');
    const size = Number(bytes.readBigUInt64BE(o + SEGMENT_PACK.size));
    const n = bytes.readUInt32BE(o + SEGMENT_PACK.entries);
    o += SEGMENT_PACK_SIZE;
    if (o + n * TRAILER_ENTRY_SIZE > bytes.length) throw corrupt(`${what} ends inside pack ${id}'s entries`);
    const entries: PackEntry[] = [];
    for (let j = 0; j < n; j++, o += TRAILER_ENTRY_SIZE) {
      const e = readTrailerEntry(bytes, o);
      if (e.offset + e.length > size) throw corrupt(`${what}: pack ${id} entry ${j} points outside the pack`);
      entries.push(e);
    }
    packs.push({ id, size, entries });
  }
  if (o !== bytes.length) throw corrupt(`${what} has ${bytes.length - o} bytes after its last pack record`);
  return packs;
}

/**
 * A new segment's name: the writer's time (ms, zero-padded so names sort by
 * it) and random bits (two writers at one instant never collide). A rebuild
 * reads segments in name order, so the first stored copy of a blob stays the
 * one every reader is given, as when it was indexed.
 */
export function newIndexSegmentName(now: number): string {
  return `${String(Math.max(0, Math.floor(now))).padStart(15, '0')}-${crypto.randomBytes(8).toString('hex')}`;
}

/** Whether `name` (without INDEX_SEGMENT_SUFFIX) is one newIndexSegmentName makes. */
export function isIndexSegmentName(name: string): boolean {
  return /^[0-9]{15}-[0-9a-f]{16}$/.test(name);
}
