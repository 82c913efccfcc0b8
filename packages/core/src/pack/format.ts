/**
 * Pack file layout — blobs appended back to back, then a trailer that lists
 * them, so the whole blob index can be rebuilt from packs alone.
 *
 *   offset        size   field
 *   0             8      magic "KEEPPACK"
 *   8             4      u32 BE version = 1
 *   12            4      reserved = 0
 *   16            ...    blobs (each as in blob/format.ts), back to back
 *   T             N*73   trailer entries, one per blob:
 *                          32  blob id
 *                           1  blob type
 *                           4  u32 BE offset in the pack
 *                           4  u32 BE length
 *                          32  storage hash (unkeyed BLAKE3 of the stored bytes)
 *   T + N*73      4      u32 BE entry count N
 *   ...           32     BLAKE3 of the trailer entries (detects a damaged trailer)
 *   end - 8       8      magic "KEEPTRLR"
 *
 * A pack is written under tmp/, fsynced, then renamed into packs/xx/ (xx = the
 * first two hex digits of its name) and the directory fsynced; only then does
 * the index learn its blobs. A pack without a valid trailer was never
 * acknowledged and is ignored (a crash left it); `keepd check` reports it.
 */
export { PACK_MAGIC, PACK_VERSION, TRAILER_MAGIC } from '../formats.js';

/** Offsets in the pack header. */
export const PACK_HEADER = { magic: 0, version: 8, reserved: 12 } as const;
export const PACK_HEADER_SIZE = 16;

/** Offsets in one trailer entry (TRAILER_ENTRY_SIZE bytes). */
export const TRAILER_ENTRY = { id: 0, type: 32, offset: 33, length: 37, hash: 41 } as const;
/** The storage hash's bytes in an entry (and the trailer checksum's). */
export const TRAILER_HASH_SIZE = 32;
export const TRAILER_ENTRY_SIZE = TRAILER_ENTRY.hash + TRAILER_HASH_SIZE;

/** Offsets in the footer: the last FOOTER_SIZE bytes of a pack, after the trailer entries. */
export const PACK_FOOTER = { count: 0, checksum: 4, magic: 36 } as const;
export const FOOTER_SIZE = PACK_FOOTER.magic + 8;

/** A pack is closed once it holds this much (restic and kopia use similar sizes). */
export const PACK_TARGET_SIZE = 16 * 1024 * 1024;

export interface PackEntry {
  id: Buffer;
  type: number;
  offset: number;
  length: number;
  hash: Buffer;
}

/** Write trailer entry `e` at `o` in `buf` (TRAILER_ENTRY layout; index segments carry the same entries). */
export function writeTrailerEntry(buf: Buffer, o: number, e: PackEntry): void {
  e.id.copy(buf, o + TRAILER_ENTRY.id);
  buf[o + TRAILER_ENTRY.type] = e.type;
  buf.writeUInt32BE(e.offset, o + TRAILER_ENTRY.offset);
  buf.writeUInt32BE(e.length, o + TRAILER_ENTRY.length);
  e.hash.copy(buf, o + TRAILER_ENTRY.hash);
}

/** The trailer entry at `o` in `buf`, copied out of it. */
export function readTrailerEntry(buf: Buffer, o: number): PackEntry {
  return {
    id: Buffer.from(buf.subarray(o + TRAILER_ENTRY.id, o + TRAILER_ENTRY.type)),
    type: buf[o + TRAILER_ENTRY.type],
    offset: buf.readUInt32BE(o + TRAILER_ENTRY.offset),
    length: buf.readUInt32BE(o + TRAILER_ENTRY.length),
    hash: Buffer.from(buf.subarray(o + TRAILER_ENTRY.hash, o + TRAILER_ENTRY.hash + TRAILER_HASH_SIZE)),
  };
}
