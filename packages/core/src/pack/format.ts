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
export const PACK_MAGIC = Buffer.from('KEEPPACK');
export const TRAILER_MAGIC = Buffer.from('KEEPTRLR');
export const PACK_VERSION = 1;
export const PACK_HEADER_SIZE = 16;
export const TRAILER_ENTRY_SIZE = 73;
export const FOOTER_SIZE = 4 + 32 + 8;

/** A pack is closed once it holds this much (restic and kopia use similar sizes). */
export const PACK_TARGET_SIZE = 16 * 1024 * 1024;

export interface PackEntry {
  id: Buffer;
  type: number;
  offset: number;
  length: number;
  hash: Buffer;
}
