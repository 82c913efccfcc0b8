import type { Database, RootDatabase } from 'lmdb';
import { BlobIndex, BlobRecord, decodeBlobRecordV2 } from '../blob-index.js';
import type { Clock } from '../clock.js';
import type { Copy, CopyIndex, Located } from '../copy-index.js';
import { Id } from '../ids.js';
import type { RepoStorage, StoredPack } from '../store/repo-storage.js';
import { MSGPACK_BLOB_TABLE } from '../formats.js';
import { IndexTables, OLD_BLOB_TABLES, PackRecord } from './tables.js';
import { PackUsage, PackUsageOptions } from '../gc/pack-usage.js';

/** Whose blobs a writer stores (Repository.openWriter). */
export interface WriterScope {
  /** tag (> 0) recorded in every blob this writer is first to store (keepd: the session's source) */
  owner?: number;
  /**
   * With `owner`: the blobs the owner may use (its own, and any shared with it). Another stored id this
   * writer receives is stored again as the owner's copy (copy-index.ts), never deduplicated against
   * bytes it does not own; without it, a stored id is deduplicated on arrival.
   */
  owns?: (id: Id) => boolean;
}

/** A pack's blob entries as BlobWriter and adoptPack index them. */
export type IndexEntry = { id: Buffer; type: number; offset: number; length: number; hash: Buffer };

/** A blob moved by a repack (gc/prune.ts), from where the mover found it to its new place. */
export type BlobMove = { id: Id; copyOf?: number; oldPack: string; oldOffset: number; pack: string; offset: number };

/**
 * Routine writes to the blob table go in transactions of at most this many
 * records. LMDB copies every page a transaction writes and can reuse the old
 * copies only after the next transaction, so one transaction over thousands
 * of random ids rewrites nearly every leaf and leaves the file at 2-2.5x its
 * live pages; bounded ones keep it near its live size (the index counts in the
 * repository's size): at most this many leaves copied, ~1 MiB. Each batch is a
 * consistent state on its own. 16 made a pack of small blobs ~100 commits,
 * the largest share of keepd's CPU receiving small files (issue 21).
 */
const BLOB_WRITE_BATCH = 256;

/**
 * A GC sweep removes records in transactions of at most this many (each one
 * consistent on its own: sweepBlobs), so it never holds the write lock for long.
 */
export const SWEEP_BATCH = 10_000;

/** A copy of `items` in blob-id order, for inBatches. */
function byId<T>(items: readonly T[], id: (x: T) => Buffer): T[] {
  // By the ids' first 6 bytes as a number (a comparison in JavaScript, not a call into C++ per pair), Buffer.compare on a tie.
  const keyed = items.map((x) => {
    const b = id(x);
    return { x, id: b, k: b.length >= 6 ? b.readUIntBE(0, 6) : 0 };
  });
  keyed.sort((a, b) => a.k - b.k || Buffer.compare(a.id, b.id));
  return keyed.map((e) => e.x);
}

/**
 * The index's blob, copy and pack tables of one open index.mdb: lookups,
 * `seen` renewal, indexing finished packs, and the writes GC makes (sweep,
 * repack switch, dropped packs). Replaced with the file on an index rebuild.
 */
export class BlobStore {
  private readonly env: RootDatabase;
  private readonly blobs: BlobIndex;
  private readonly copies: CopyIndex;
  private readonly packs: Database<PackRecord, string>;
  private readonly meta: Database<unknown, string>;

  constructor(
    t: IndexTables,
    private readonly clock: Clock,
    private readonly storage: RepoStorage,
  ) {
    ({ env: this.env, blobs: this.blobs, copies: this.copies, packs: this.packs, meta: this.meta } = t);
  }

  /** Whether a rebuild of this index finished (an earlier version rebuilt in place). */
  isBuilt(): boolean {
    return this.meta.get('built') === true;
  }

  /** An index written by an earlier version: its blob records move to the current table, each table in one transaction. */
  async migrateOldBlobTables(): Promise<void> {
    for (const name of OLD_BLOB_TABLES) {
      const msgpack = name === MSGPACK_BLOB_TABLE;
      const old = this.env.openDB<BlobRecord | Buffer, Buffer>({ name, keyEncoding: 'binary', ...(msgpack ? {} : { encoding: 'binary' }) });
      if (old.getCount() === 0) continue;
      await this.env.transaction(() => {
        for (const { key, value } of old.getRange()) {
          const r = msgpack ? (value as BlobRecord) : decodeBlobRecordV2(value as Buffer);
          if (!this.blobs.has(key)) this.blobs.put(key, { ...r, hash: Buffer.from(r.hash) });
        }
        old.clearSync();
      });
    }
  }

  lookup(id: Id): BlobRecord | undefined {
    return this.blobs.get(id);
  }

  has(id: Id): boolean {
    return this.blobs.has(id);
  }

  /** The tag of the writer that stored `id` (openWriter's `owner`), if it had one. */
  ownerOf(id: Id): number | undefined {
    return this.blobs.owner(id);
  }

  /**
   * Which of `ids` the repository lacks. Present ones get `seen` renewed: a
   * session told "have it" may rely on that blob until its lease ends.
   */
  async missing(ids: Id[]): Promise<Id[]> {
    const now = this.clock.now();
    const lacking: Id[] = [];
    const present: Id[] = [];
    for (const id of ids) (this.blobs.has(id) ? present : lacking).push(id);
    if (present.length) await this.touch(present, now);
    return lacking;
  }

  /** Renew `seen` of each blob, and of owner `tag`'s copy of it when it has one. */
  async touch(ids: Id[], now = this.clock.now(), tag?: number): Promise<void> {
    await this.inBatches(byId(ids, (x) => x), (batch) => {
      for (const id of batch) {
        const r = this.blobs.get(id);
        if (r && r.seen < now) this.blobs.put(id, { ...r, seen: now });
        const c = tag === undefined ? undefined : this.copies.get(id, tag);
        if (c && c.seen < now) this.copies.put(id, tag!, { ...c, seen: now });
      }
    });
  }

  /**
   * `write` over `items` in transactions of BLOB_WRITE_BATCH, in order (none for no items); `first` is true for the first one.
   * Callers pass blob writes sorted by id (`byId`): a batch then lands on one or two neighbouring leaves instead of
   * one leaf per record, and each transaction leaves that few old page copies behind.
   */
  private async inBatches<T>(items: T[], write: (batch: T[], first: boolean) => void): Promise<void> {
    for (let i = 0; i < items.length; i += BLOB_WRITE_BATCH) {
      const batch = items.slice(i, i + BLOB_WRITE_BATCH);
      await this.env.transaction(() => write(batch, i === 0));
    }
  }

  /**
   * Called by BlobWriter once a pack is durable in packs/. Returns the ids
   * another writer had indexed first under another owner tag, for the caller
   * to record its ownership elsewhere.
   */
  async indexPack(id: string, size: number, entries: IndexEntry[], scope: WriterScope = {}): Promise<Id[]> {
    const { owner, owns } = scope;
    const now = this.clock.now();
    const elsewhere: Id[] = [];
    // The pack is recorded first: a crash between batches leaves some of its blobs unindexed (garbage for prune, resent by a rerun).
    await this.inBatches(byId(entries, (e) => e.id), (batch, first) => {
      if (first) this.packs.put(id, { size, blobs: entries.length, created: now });
      for (const e of batch) {
        // Another writer may have stored the same blob meanwhile: the first
        // indexed copy wins, this one is garbage for prune; unless this
        // writer is scoped and does not own the first: then it is its copy.
        if (this.blobs.has(e.id)) {
          if (owns) {
            if (!owns(e.id) && !this.copies.get(e.id, owner!)) this.copies.put(e.id, owner!, { pack: id, offset: e.offset, length: e.length, hash: e.hash, type: e.type, seen: now });
          } else if (owner && this.blobs.owner(e.id) !== owner) elsewhere.push(e.id);
          continue;
        }
        this.blobs.put(e.id, { pack: id, offset: e.offset, length: e.length, hash: e.hash, type: e.type, seen: now, owner });
      }
    });
    return elsewhere;
  }

  /**
   * Mark trees a closure walk proved whole in GC epoch `epoch` (snapshot/store.ts),
   * in batches: the marks only save later walks. A mark goes on the record the
   * walk proved: a source's copy, or the primary.
   */
  async markComplete(trees: (Located & { id: Id })[], epoch: number, now: number): Promise<void> {
    await this.inBatches(byId(trees, (x) => x.id), (batch) => this.markCompleteNow(batch, epoch, now));
  }

  /** markComplete inside the caller's write transaction (a few marks riding on a snapshot's commit). */
  markCompleteNow(trees: (Located & { id: Id })[], epoch: number, now: number): void {
    for (const t of byId(trees, (x) => x.id)) {
      if (t.copyOf !== undefined) {
        const c = this.copies.get(t.id, t.copyOf);
        if (c) this.copies.put(t.id, t.copyOf, { ...c, complete: epoch, seen: Math.max(c.seen, now) });
        continue;
      }
      const r = this.blobs.get(t.id);
      if (r) this.blobs.put(t.id, { ...r, complete: epoch, seen: Math.max(r.seen, now) });
    }
  }

  /** How many writes one transaction takes in markCompleteNow's callers (BLOB_WRITE_BATCH: see inBatches). */
  get writeBatch(): number {
    return BLOB_WRITE_BATCH;
  }

  /** Incremented by every GC sweep; "complete" marks from earlier epochs are not trusted. */
  gcEpoch(): number {
    return (this.meta.get('gcEpoch') as number | undefined) ?? 0;
  }

  // ---- garbage collection (gc/prune.ts holds the rules) -------------------

  /**
   * Remove unreferenced records (`records`: a primary has no tag, a
   * per-source copy its owner's) from the index, in transactions of at most
   * `batchSize` (SWEEP_BATCH) records so pack indexing and `seen` renewals interleave with
   * a long sweep. Each transaction re-reads every record and skips any
   * touched since `cutoff` (a session relied on it after the mark), and bumps
   * the GC epoch together with its removals: a tree "complete" mark made
   * before a batch, even by a closure walk that ran between two batches, is
   * never trusted after it. A crash between batches leaves an index where
   * every removal was garbage by these rules and is covered by an epoch bump;
   * the rest is swept by the next prune. Returns how many records went.
   */
  async sweepBlobs(records: Iterable<{ id: Id; tag?: number }>, cutoff: number, batchSize = SWEEP_BATCH): Promise<number> {
    let removed = 0;
    const sweep = (batch: { id: Id; tag?: number }[]) =>
      this.env.transaction(() => {
        for (const { id, tag } of batch) {
          const r = tag === undefined ? this.blobs.get(id) : this.copies.get(id, tag);
          if (!r || r.seen >= cutoff) continue;
          if (tag === undefined) this.blobs.remove(id);
          else this.copies.remove(id, tag);
          removed++;
        }
        this.meta.put('gcEpoch', this.gcEpoch() + 1);
      });
    let batch: { id: Id; tag?: number }[] = [];
    for (const r of records) {
      batch.push(r);
      if (batch.length >= batchSize) await sweep(batch), (batch = []);
    }
    // The last (or only) batch bumps the epoch even when it removes nothing, as one sweep always did.
    await sweep(batch);
    return removed;
  }

  /**
   * Live blobs and bytes per indexed pack, in bounded memory (gc/pack-usage.ts;
   * close() the result). `createdBefore` leaves out packs recorded at or after
   * it: a pack is indexed in several transactions, so a young one may look
   * sparse or empty only because its indexing is not done.
   */
  packUsage(opts: PackUsageOptions = {}): PackUsage {
    const records = (function* (all: Iterable<[Id, BlobRecord, number | undefined]>) {
      for (const [, r] of all) yield r;
    })(this.allRecords());
    return PackUsage.count(() => this.packs.getRange(), records, opts);
  }

  /**
   * Point moved blobs at their new pack (only those still where the mover
   * found them) and record the new pack, in one transaction.
   */
  async switchBlobs(pack: string, size: number, count: number, moves: BlobMove[]): Promise<void> {
    await this.env.transaction(() => {
      this.packs.put(pack, { size, blobs: count, created: this.clock.now() });
      for (const m of moves) {
        const r = m.copyOf === undefined ? this.blobs.get(m.id) : this.copies.get(m.id, m.copyOf);
        if (!r || r.pack !== m.oldPack || r.offset !== m.oldOffset) continue;
        const moved = { ...r, pack: m.pack, offset: m.offset };
        if (m.copyOf === undefined) this.blobs.put(m.id, moved);
        else this.copies.put(m.id, m.copyOf, moved);
      }
    });
  }

  /**
   * Forget packs the index no longer points into, then delete their files,
   * or with `deleteFiles` false leave them to the caller (delayed deletion
   * on object storage). A pack some blob still points to is kept.
   */
  async dropPacks(ids: string[], deleteFiles = true): Promise<{ id: string; size: number }[]> {
    if (ids.length === 0) return [];
    const drop = new Set(ids);
    for (const [, r] of this.allRecords()) drop.delete(r.pack);
    const dropped = [...drop].map((id) => ({ id, size: this.packs.get(id)?.size ?? 0 }));
    await this.env.transaction(() => {
      for (const id of drop) this.packs.remove(id);
    });
    if (deleteFiles) await this.storage.deletePacks([...drop]);
    return dropped;
  }

  /**
   * An orphan pack (on disk, not in the index) whose trailer is intact and
   * lists blobs the index lacks is indexed: an index that lost writes (a
   * rebuild racing a writer, an index restored from a copy) must not cost the
   * blobs only this pack holds. Returns false when there is nothing to adopt
   * (the trailer is damaged, or every blob is indexed elsewhere): the pack
   * is garbage then.
   */
  async adoptPack(p: StoredPack): Promise<boolean> {
    let entries;
    try {
      entries = await this.storage.readTrailer(p.id);
    } catch {
      return false;
    }
    if (entries.every((e) => this.blobs.has(e.id))) return false;
    await this.indexPack(p.id, p.size, entries);
    return true;
  }

  // ---- listing ---------------------------------------------------------------

  /** Every stored pack. */
  packFiles(): Promise<StoredPack[]> {
    return this.storage.listPacks();
  }

  /** Whether the index knows pack `id`. */
  hasPack(id: string): boolean {
    return !!this.packs.get(id);
  }

  /** Stored packs that the index does not know (orphans). */
  async unindexedPackFiles(): Promise<StoredPack[]> {
    return (await this.packFiles()).filter((p) => !this.packs.get(p.id));
  }

  blobCount(): number {
    return this.blobs.getCount();
  }

  *allBlobs(): Generator<[Id, BlobRecord]> {
    for (const { key, value } of this.blobs.getRange()) yield [key, value];
  }

  /** Every per-source copy (copy-index.ts). */
  allCopies(): Generator<Copy> {
    return this.copies.all();
  }

  /** Every record that points into a pack: primaries, then copies (the copy's owner tag as third item). */
  *allRecords(): Generator<[Id, BlobRecord, number | undefined]> {
    for (const [id, r] of this.allBlobs()) yield [id, r, undefined];
    for (const c of this.copies.all()) yield [c.id, c.record, c.tag];
  }

  packCount(): number {
    return this.packs.getCount();
  }

  /** Bytes in stored packs (what the repository costs): the files on disk, or the index's pack sizes where listing costs requests. */
  storedBytes(): number {
    return this.storage.packBytes() ?? this.indexedPackBytes();
  }

  /** Bytes of the packs the index knows, by their recorded sizes: no listing, no stat (for gauges scraped often). */
  indexedPackBytes(): number {
    let n = 0;
    for (const { value } of this.packs.getRange()) n += value.size;
    return n;
  }
}
