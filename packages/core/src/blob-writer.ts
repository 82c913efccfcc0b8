import path from 'node:path';
import { MAX_BLOB_SIZE } from './blob/format.js';
import { parseBlob } from './blob/seal.js';
import { KeepError } from './errors.js';
import { Id, storageHash, toHex } from './ids.js';
import type { IndexEntry, WriterScope } from './index/blob-store.js';
import { PACK_TARGET_SIZE } from './pack/format.js';
import { PackWriter, type SealedPack } from './pack/writer.js';
import { storageFailure } from './storage-space.js';
import { REPO_DIRS } from './formats.js';

/** What a BlobWriter needs of its repository (Repository is one). */
export interface BlobSink {
  readonly dir: string;
  readonly packsDir: string;
  has(id: Id): boolean;
  /** record a pack about to be sealed and published (for its index segment); never rejects */
  journalPack(p: { id: string; size: number }): Promise<void>;
  /** make a sealed pack readable (RepoStorage.publishPack); `journaled`: journalPack recorded it already */
  publishPack(p: SealedPack, journaled?: boolean): Promise<void>;
  touch(ids: Id[], now?: number, tag?: number): Promise<void>;
  indexPack(id: string, size: number, entries: IndexEntry[], scope?: WriterScope): Promise<Id[]>;
}

/** A blob to store: its id, its stored bytes and, from an upload, the storage hash it was sent with. */
export interface NewBlob {
  id: Id;
  stored: Buffer;
  expectHash?: Buffer;
}

/**
 * One writer session's stream of blobs into packs. Blobs become visible in
 * the index a pack at a time, after the pack is durable; `flush()` makes the
 * rest durable (call it before committing a snapshot).
 */
export class BlobWriter {
  private pack: PackWriter | undefined;
  /** ids written into the open pack */
  private readonly pending = new Set<string>();
  /** ids of finished packs whose indexing has not finished */
  private readonly indexing = new Set<string>();
  /** the finished packs' indexing, one after another, off the add() path */
  private indexed: Promise<void> = Promise.resolve();
  bytesStored = 0;
  blobsStored = 0;

  /** ids this writer stored whose index record another writer won (see indexPack) */
  private indexedElsewhere: Id[] = [];

  constructor(
    private readonly repo: BlobSink,
    private readonly scope: WriterScope = {},
  ) {}

  /** The ids stored here but indexed under another writer's owner tag since the last call. */
  takeIndexedElsewhere(): Id[] {
    return this.indexedElsewhere.splice(0);
  }

  /**
   * Store one blob. Returns false when the repository already had it (dedup on
   * arrival; for a scoped writer, only a blob its owner may use). `expectHash`,
   * when given, must equal the bytes' storage hash: the server uses it to
   * refuse blobs damaged in transit.
   */
  async add(id: Id, stored: Buffer, expectHash?: Buffer): Promise<boolean> {
    return (await this.addMany([{ id, stored, expectHash }]))[0];
  }

  /**
   * Store a batch of blobs (keepd: one upload message): for each, whether it
   * was new. Every blob's size, header and hash are checked before anything
   * is looked up or stored, so a bad blob refuses the whole batch, the same
   * way whether its ids are stored or not (no existence oracle). The dedup
   * lookups run in one synchronous pass (one LMDB read transaction), the
   * blobs found are touched in one write, the new ones appended in order.
   */
  async addMany(blobs: NewBlob[]): Promise<boolean[]> {
    const checked = blobs.map(({ id, stored, expectHash }) => {
      const hex = toHex(id);
      if (stored.length > MAX_BLOB_SIZE) throw new KeepError('INVALID_ARGUMENT', `blob ${hex} is ${stored.length} bytes, over the ${MAX_BLOB_SIZE} limit`);
      const { type } = parseBlob(stored);
      const hash = storageHash(stored);
      if (expectHash && !hash.equals(expectHash)) throw new KeepError('CORRUPT', `blob ${hex} arrived damaged (storage hash mismatch)`);
      return { id, hex, stored, type, hash };
    });
    // Storing a copy costs what storing a new blob costs: a scoped writer's timing says nothing of other owners.
    const { owner, owns } = this.scope;
    const known = checked.map(({ id, hex }) => !this.pending.has(hex) && !this.indexing.has(hex) && (owns ? owns(id) : this.repo.has(id)));
    const found = checked.filter((_, i) => known[i]).map((b) => b.id);
    if (found.length) await this.repo.touch(found, undefined, owns ? owner : undefined);
    const added: boolean[] = [];
    for (let i = 0; i < checked.length; i++) {
      const { id, hex, stored, type, hash } = checked[i];
      // known, or an earlier blob of the batch (or of the writer) is this one
      if (known[i] || this.pending.has(hex) || this.indexing.has(hex)) {
        added.push(false);
        continue;
      }
      this.pack ??= new PackWriter(path.join(this.repo.dir, REPO_DIRS.tmp), this.repo.packsDir);
      try {
        this.pack.add(id, type, stored, hash);
      } catch (e) {
        // A failed append drops the blobs gathered since the pack's last write: they are not stored after all.
        this.pending.clear();
        for (const entry of this.pack.entries) this.pending.add(toHex(entry.id));
        throw e;
      }
      this.pending.add(hex);
      this.bytesStored += stored.length;
      this.blobsStored++;
      added.push(true);
      if (this.pack.bytes >= PACK_TARGET_SIZE) await this.finishPack();
    }
    return added;
  }

  /**
   * Make the open pack durable and start indexing it. Adds go on into a new
   * pack meanwhile; the wait for the previous pack's indexing bounds the
   * work in flight to one pack.
   */
  private async finishPack(): Promise<void> {
    const p = this.pack;
    if (!p) return;
    this.pack = undefined;
    let done;
    try {
      // journaled while the pack's fsync runs (a WAL segment's acknowledgement waited for both in turn)
      done = await p.sealAlongside((sealed) => this.repo.journalPack(sealed));
      await this.repo.publishPack(done, true).catch((e: unknown) => {
        p.abandon();
        throw e;
      });
    } catch (e) {
      this.pending.clear(); // the pack is discarded: its blobs are not stored after all
      throw e;
    }
    for (const e of done.entries) {
      const hex = toHex(e.id);
      this.pending.delete(hex);
      this.indexing.add(hex);
    }
    const before = this.indexed;
    this.indexed = before.then(async () => {
      try {
        this.indexedElsewhere.push(...(await this.repo.indexPack(done.id, done.size, done.entries, this.scope)));
      } catch (e) {
        throw await storageFailure(e, this.repo.dir);
      } finally {
        for (const e of done.entries) this.indexing.delete(toHex(e.id));
      }
    });
    this.indexed.catch(() => undefined); // a failure surfaces at the next finishPack or flush, not as an unhandled rejection
    await before;
  }

  /** Make every blob added so far durable and indexed. */
  async flush(): Promise<void> {
    await this.finishPack();
    await this.indexed;
  }

  /** Drop the open pack: nothing in it was acknowledged. Finished packs are still indexed. */
  abandon(): void {
    this.pack?.abandon();
    this.pack = undefined;
    this.pending.clear();
  }
}
