import type { Database, RootDatabase } from 'lmdb';
import type { BlobType } from './blob/format.js';
import { KeepError } from './errors.js';

/** Where a blob lives and what the index knows of it (repository.ts). */
export interface BlobRecord {
  pack: string;
  offset: number;
  length: number;
  hash: Buffer;
  type: BlobType;
  /** last time (ms) a session uploaded or was told it need not upload this blob; GC's grace clock */
  seen: number;
  /**
   * trees only: the GC epoch in which every blob reachable from this tree was
   * proven stored. Trusted only while no sweep has run since (same epoch).
   */
  complete?: number;
}

/**
 * The blob table of the LMDB index, one fixed binary record per blob:
 *
 *   offset size  field
 *   0      1     flags   bit 0: `complete` present
 *   1      1     type    (BlobType)
 *   2      16    pack id (the pack file's 32 hex digits, as bytes)
 *   18     4     offset  u32 BE
 *   22     4     length  u32 BE
 *   26     32    storage hash
 *   58     8     seen    f64 BE (ms)
 *   66     4     complete u32 BE (when flagged)
 *
 * 66-70 bytes instead of ~125 as a msgpack object with a hex pack name: the
 * index is part of the repository's size, and on the bench tree this halves
 * it. Every access goes through here, so the layout lives in one place.
 */
const BASE = 66;
const HAS_COMPLETE = 1;

export function encodeBlobRecord(r: BlobRecord): Buffer {
  if (!/^[0-9a-f]{32}$/.test(r.pack)) throw new KeepError('INTERNAL', `pack id ${r.pack} is not 32 hex digits`);
  if (!(r.offset >= 0 && r.offset <= 0xffffffff && r.length >= 0 && r.length <= 0xffffffff)) throw new KeepError('INTERNAL', `blob position ${r.offset}+${r.length} does not fit the index`);
  const complete = r.complete !== undefined;
  const b = Buffer.allocUnsafe(BASE + (complete ? 4 : 0));
  b[0] = complete ? HAS_COMPLETE : 0;
  b[1] = r.type;
  b.write(r.pack, 2, 16, 'hex');
  b.writeUInt32BE(r.offset, 18);
  b.writeUInt32BE(r.length, 22);
  r.hash.copy(b, 26, 0, 32);
  b.writeDoubleBE(r.seen, 58);
  if (complete) b.writeUInt32BE(r.complete!, BASE);
  return b;
}

export function decodeBlobRecord(b: Uint8Array): BlobRecord {
  const v = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  if (v.length < BASE) throw new KeepError('CORRUPT', `index record of ${v.length} bytes is too short`);
  const r: BlobRecord = {
    pack: v.toString('hex', 2, 18),
    offset: v.readUInt32BE(18),
    length: v.readUInt32BE(22),
    hash: Buffer.from(v.subarray(26, 58)),
    type: v[1] as BlobType,
    seen: v.readDoubleBE(58),
  };
  if (v[0] & HAS_COMPLETE) r.complete = v.readUInt32BE(BASE);
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
