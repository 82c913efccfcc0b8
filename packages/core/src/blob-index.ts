import type { Database, RootDatabase } from 'lmdb';
import type { BlobType } from './blob/format.js';
import { KeepError } from './errors.js';

/** Where a blob lives and what the index knows of it (repository.ts). */
export interface BlobRecord {
  pack: string;
  offset: number;
  length: number;
  /**
   * The first STORED_HASH_PREFIX bytes of the blob's storage hash (more when a
   * caller has the whole hash at hand; only the prefix is kept). Enough to
   * catch damaged bytes; the full hash is in the pack's trailer.
   */
  hash: Buffer;
  type: BlobType;
  /** last time (ms) a session uploaded or was told it need not upload this blob; GC's grace clock */
  seen: number;
  /**
   * trees only: the GC epoch in which every blob reachable from this tree was
   * proven stored. Trusted only while no sweep has run since (same epoch).
   */
  complete?: number;
  /**
   * The tag (> 0) of the writer that stored the blob, when its writer had one:
   * keepd's dedup scope puts a source's first ownership here instead of in a
   * row of its own. Opaque to the engine; kept across repacks.
   */
  owner?: number;
}

/** Bytes of the storage hash the index keeps: 128 bits catch any damage; the pack trailer has all 32. */
export const STORED_HASH_PREFIX = 16;

/**
 * The blob table of the LMDB index (`blobs-v3`), one binary record per blob:
 *
 *   offset size  name (REC.*)  field
 *   0      1     flags         bit 0: `complete` present, bit 1: `owner` present
 *   1      1     type          (BlobType)
 *   2      16    pack          pack id (the pack file's 32 hex digits, as bytes)
 *   18     4     offset        u32 BE
 *   22     4     length        u32 BE
 *   26     16    hash          storage hash, first 16 bytes
 *   42     6     seen          u48 BE (ms)
 *   48     4     owner         u32 BE (when flagged)      REC.base: the optional fields start here
 *   then   4     complete      u32 BE (when flagged)
 *
 * 48-56 bytes, and the owner's tag inside: with the key, LMDB's node header
 * and slot this is ~94 bytes a blob, against ~160 for the 66-byte v2 record
 * plus an ownership row. The index is part of the repository's size, so the
 * layout is tight; every access goes through here, so it lives in one place.
 */
/** Offsets in a record (the layout above); `base`: its size without the optional fields. */
const REC = { flags: 0, type: 1, pack: 2, offset: 18, length: 22, hash: 26, seen: 42, base: 48 } as const;
const PACK_ID_SIZE = 16;
const SEEN_SIZE = 6;
const OPTIONAL_FIELD_SIZE = 4;
const BASE: number = REC.base;
const HAS_COMPLETE = 1;
const HAS_OWNER = 2;

export function encodeBlobRecord(r: BlobRecord): Buffer {
  if (!/^[0-9a-f]{32}$/.test(r.pack)) throw new KeepError('INTERNAL', `pack id ${r.pack} is not 32 hex digits`);
  if (!(r.offset >= 0 && r.offset <= 0xffffffff && r.length >= 0 && r.length <= 0xffffffff)) throw new KeepError('INTERNAL', `blob position ${r.offset}+${r.length} does not fit the index`);
  if (r.hash.length < STORED_HASH_PREFIX) throw new KeepError('INTERNAL', `storage hash of ${r.hash.length} bytes is too short`);
  const owner = r.owner !== undefined && r.owner > 0;
  const complete = r.complete !== undefined;
  const b = Buffer.allocUnsafe(BASE + (owner ? OPTIONAL_FIELD_SIZE : 0) + (complete ? OPTIONAL_FIELD_SIZE : 0));
  b[REC.flags] = (complete ? HAS_COMPLETE : 0) | (owner ? HAS_OWNER : 0);
  b[REC.type] = r.type;
  b.write(r.pack, REC.pack, PACK_ID_SIZE, 'hex');
  b.writeUInt32BE(r.offset, REC.offset);
  b.writeUInt32BE(r.length, REC.length);
  r.hash.copy(b, REC.hash, 0, STORED_HASH_PREFIX);
  b.writeUIntBE(Math.max(0, Math.round(r.seen)), REC.seen, SEEN_SIZE);
  let o = BASE;
  if (owner) o = b.writeUInt32BE(r.owner!, o);
  if (complete) b.writeUInt32BE(r.complete!, o);
  return b;
}

export function decodeBlobRecord(b: Uint8Array): BlobRecord {
  const v = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  const want = BASE + (v[REC.flags] & HAS_OWNER ? OPTIONAL_FIELD_SIZE : 0) + (v[REC.flags] & HAS_COMPLETE ? OPTIONAL_FIELD_SIZE : 0);
  if (v.length < want) throw new KeepError('CORRUPT', `index record of ${v.length} bytes is too short`);
  const r: BlobRecord = {
    pack: v.toString('hex', REC.pack, REC.pack + PACK_ID_SIZE),
    offset: v.readUInt32BE(REC.offset),
    length: v.readUInt32BE(REC.length),
    hash: Buffer.from(v.subarray(REC.hash, REC.hash + STORED_HASH_PREFIX)),
    type: v[REC.type] as BlobType,
    seen: v.readUIntBE(REC.seen, SEEN_SIZE),
  };
  let o = BASE;
  if (v[REC.flags] & HAS_OWNER) {
    r.owner = v.readUInt32BE(o);
    o += OPTIONAL_FIELD_SIZE;
  }
  if (v[REC.flags] & HAS_COMPLETE) r.complete = v.readUInt32BE(o);
  return r;
}

/** The owner tag alone, without decoding the record (dedup-scope checks on every offered id). */
export function blobRecordOwner(b: Uint8Array): number | undefined {
  return b[REC.flags] & HAS_OWNER ? Buffer.from(b.buffer, b.byteOffset, b.byteLength).readUInt32BE(BASE) : undefined;
}

/**
 * The 66-70 byte record of the `blobs-v2` table (before v3 shrank the hash and
 * seen and took the owner in): read only to migrate it. As v3 up to `hash`,
 * then the whole 32-byte hash, `seen` as a float64 BE at 58, and `complete`
 * (u32 BE, when flagged) at 66.
 */
const REC_V2 = { flags: 0, type: 1, pack: 2, offset: 18, length: 22, hash: 26, seen: 58, complete: 66, base: 66 } as const;

export function decodeBlobRecordV2(b: Uint8Array): BlobRecord {
  const v = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  if (v.length < REC_V2.base) throw new KeepError('CORRUPT', `index record of ${v.length} bytes is too short`);
  const r: BlobRecord = {
    pack: v.toString('hex', REC_V2.pack, REC_V2.pack + PACK_ID_SIZE),
    offset: v.readUInt32BE(REC_V2.offset),
    length: v.readUInt32BE(REC_V2.length),
    hash: Buffer.from(v.subarray(REC_V2.hash, REC_V2.seen)),
    type: v[REC_V2.type] as BlobType,
    seen: v.readDoubleBE(REC_V2.seen),
  };
  if (v[REC_V2.flags] & HAS_COMPLETE) r.complete = v.readUInt32BE(REC_V2.complete);
  return r;
}

/** The blob table with records encoded as above; keys are the 32-byte blob ids. */
export class BlobIndex {
  private readonly db: Database<Buffer, Buffer>;

  constructor(env: RootDatabase, name: string) {
    this.db = env.openDB({ name, keyEncoding: 'binary', encoding: 'binary' }) as unknown as Database<Buffer, Buffer>;
  }

  get(id: Buffer): BlobRecord | undefined {
    const v = this.db.get(id);
    return v === undefined ? undefined : decodeBlobRecord(v);
  }

  /** Presence without decoding. */
  has(id: Buffer): boolean {
    return this.db.get(id) !== undefined;
  }

  /** The owner tag of a stored blob (undefined: not stored, or stored by an untagged writer). */
  owner(id: Buffer): number | undefined {
    const v = this.db.get(id);
    return v === undefined ? undefined : blobRecordOwner(v);
  }

  put(id: Buffer, r: BlobRecord): Promise<boolean> {
    return this.db.put(id, encodeBlobRecord(r));
  }

  remove(id: Buffer): Promise<boolean> {
    return this.db.remove(id);
  }

  getCount(): number {
    return this.db.getCount();
  }

  *getRange(): Generator<{ key: Buffer; value: BlobRecord }> {
    for (const { key, value } of this.db.getRange()) yield { key, value: decodeBlobRecord(value) };
  }

  clearSync(): void {
    this.db.clearSync();
  }
}
