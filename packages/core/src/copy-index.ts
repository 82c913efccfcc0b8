import type { Database, RootDatabase } from 'lmdb';
import { BlobIndex, BlobRecord, decodeBlobRecord, encodeBlobRecord } from './blob-index.js';
import { INDEX_TABLES } from './formats.js';
import { ID_SIZE, Id } from './ids.js';
import type { SourceTags } from './source-tags.js';

/**
 * Per-source copies of blobs (LMDB `copies`). The server cannot check a
 * ciphertext against another one, so a writer with an owner tag (keepd: a
 * source-scoped session) that stores an id it does not own stores its own
 * bytes, recorded here instead of sharing the first stored copy (the
 * "primary" in the blob table): it can neither read nor poison another
 * source's bytes, and learns nothing from whether the id was stored.
 *
 *   key   = blob id (32 bytes) || owner tag (u32 BE)
 *   value = the blob table's record (blob-index.ts codec; its owner field unused)
 *
 * A copy lives in a pack like any blob; GC keeps the copies of live ids,
 * sweeps them with their id, and repacks them (gc/prune.ts).
 */
export const COPIES_DB = INDEX_TABLES.copies;

const KEY_SIZE = ID_SIZE + 4;

export function copyKey(id: Id, tag: number): Buffer {
  const k = Buffer.allocUnsafe(KEY_SIZE);
  id.copy(k, 0, 0, ID_SIZE);
  k.writeUInt32BE(tag, ID_SIZE);
  return k;
}

/** A copies-table row (key and value as stored) as a Copy. */
export function decodeCopy(key: Buffer, value: Buffer): Copy {
  if (key.length !== KEY_SIZE) throw new Error(`a copy key is ${KEY_SIZE} bytes, not ${key.length}`);
  return { id: Buffer.from(key.subarray(0, ID_SIZE)), tag: key.readUInt32BE(ID_SIZE), record: decodeBlobRecord(value) };
}

export interface Copy {
  id: Id;
  tag: number;
  record: BlobRecord;
}

export class CopyIndex {
  private readonly db: Database<Buffer, Buffer>;

  constructor(env: RootDatabase) {
    this.db = env.openDB({ name: COPIES_DB, keyEncoding: 'binary', encoding: 'binary' }) as unknown as Database<Buffer, Buffer>;
  }

  get(id: Id, tag: number): BlobRecord | undefined {
    const v = this.db.get(copyKey(id, tag));
    return v === undefined ? undefined : decodeBlobRecord(v);
  }

  /** Presence without decoding. */
  has(id: Id, tag: number): boolean {
    return this.db.get(copyKey(id, tag)) !== undefined;
  }

  put(id: Id, tag: number, r: BlobRecord): Promise<boolean> {
    return this.db.put(copyKey(id, tag), encodeBlobRecord({ ...r, owner: undefined }));
  }

  remove(id: Id, tag: number): Promise<boolean> {
    return this.db.remove(copyKey(id, tag));
  }

  /** Every copy of `id`. */
  *of(id: Id): Generator<Copy> {
    const start = copyKey(id, 0);
    const end = copyKey(id, 0xffffffff);
    for (const { key, value } of this.db.getRange({ start, end })) yield this.entry(key, value);
    const last = this.db.get(end);
    if (last !== undefined) yield this.entry(end, last);
  }

  *all(): Generator<Copy> {
    for (const { key, value } of this.db.getRange()) yield this.entry(key, value);
  }

  private entry(key: Buffer, value: Buffer): Copy {
    return decodeCopy(key, value);
  }

  getCount(): number {
    return this.db.getCount();
  }
}

/** The record of a blob some reader sees: the primary, or the copy of owner `copyOf`. */
export interface Located {
  record: BlobRecord;
  copyOf?: number;
}

/**
 * Which stored bytes of each blob a reader, a commit's closure walk or a
 * mark sees; undefined: none (for a source-scoped view, also a blob stored
 * only by other sources: the same answer as for one never stored).
 */
/** Where a blob's bytes are for a reader, or undefined; `has`, when given, answers presence alone, without decoding a record. */
export type BlobView = ((id: Id) => Located | undefined) & { has?: (id: Id) => boolean };

/** The views of one repository's blob and copy tables. */
export class BlobViews {
  constructor(
    private readonly blobs: BlobIndex,
    private readonly copies: CopyIndex,
    private readonly tags: SourceTags,
  ) {}

  /** The unscoped view: the first stored copy of every blob (the blob table). */
  readonly primary: BlobView = (id) => {
    const r = this.blobs.get(id);
    return r && { record: r };
  };

  /**
   * What owner `tag` may see: its own copy of a blob, else the primary when
   * that carries the tag or `shared` says it was shared with the owner; else
   * nothing (the same as for a blob never stored).
   */
  scoped(tag: number, shared: (id: Id) => boolean = () => false): BlobView {
    const view: BlobView = (id) => {
      const c = this.copies.get(id, tag);
      if (c) return { record: c, copyOf: tag };
      // The same lookups whether another owner stored the id or nobody did: their cost says nothing of it.
      const owner = this.blobs.owner(id);
      const isShared = shared(id);
      if (owner !== tag && !isShared) return undefined;
      const r = this.blobs.get(id);
      return r && { record: r };
    };
    // a closure check asks presence of every data blob (snapshot/store.ts)
    view.has = this.owns(tag, shared);
    return view;
  }

  /**
   * Whether owner `tag` may use each blob: what `scoped` answers, as a yes or
   * no, for the dedup of every uploaded blob (BlobWriter). No record is
   * decoded, and the reads are again the same whether another owner stored
   * the id or nobody did: its copy, the first copy's owner, `shared`; the
   * first copy's presence only when shared.
   */
  owns(tag: number, shared: (id: Id) => boolean = () => false): (id: Id) => boolean {
    return (id) => this.copies.has(id, tag) || this.blobs.owner(id) === tag || (shared(id) && this.blobs.has(id));
  }

  /** `source`'s copy of each blob when it has one, else the primary: how a snapshot of `source` reads (GC, check, restore, replicas). */
  ofSource(source: string): BlobView {
    const tag = this.tags.find(source);
    if (tag === undefined || this.copies.getCount() === 0) return this.primary;
    return (id) => {
      const c = this.copies.get(id, tag);
      return c ? { record: c, copyOf: tag } : this.primary(id);
    };
  }
}
