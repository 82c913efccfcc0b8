import fs from 'node:fs';
import path from 'node:path';
import type { Database } from 'lmdb';
import type { BlobRecord } from './blob-index.js';
import { BlobWriter } from './blob-writer.js';
import { checkRepository, CheckOptions, CheckReport } from './check.js';
import { ChunkerParams } from './chunker-params.js';
import { Clock, processClock } from './clock.js';
import { newRepoConfig, parseRepoConfig, RepoConfig } from './config.js';
import { BlobView, BlobViews, Copy, Located } from './copy-index.js';
import { KeepError } from './errors.js';
import { Id } from './ids.js';
import type { PackUsage, PackUsageOptions } from './gc/pack-usage.js';
import { BlobReader } from './index/blob-reader.js';
import { BlobMove, BlobStore, IndexEntry, WriterScope } from './index/blob-store.js';
import { checkIndexFile, rebuildClosedIndex, rebuildIndexFile, RebuildReport } from './index/rebuild.js';
import { IndexSegmentLog } from './index/segment-log.js';
import { type SegmentJournal, stateSegmentJournal } from './index/segment-journal.js';
import { ENGINE_TABLES, INDEX_FILE, IndexTables, openIndexTables, SessionRecord } from './index/tables.js';
import { KeyFile } from './keys/keyfile.js';
import { KeyStore } from './keys/key-store.js';
import type { StoredBytes } from './pack/reader.js';
import type { SealedPack } from './pack/writer.js';
import type { RepoStorage, StoredPack, WriterHold } from './store/repo-storage.js';
import { openRepoStorage } from './store/storage-record.js';
import { DelayedDeletions } from './gc/delayed-deletions.js';
import { SessionRegistry } from './sessions/registry.js';
import { NewSnapshot, Snapshot } from './snapshot/snapshot.js';
import type { Replacement } from './snapshot/replace.js';
import { CommitOptions, SnapshotStore } from './snapshot/store.js';
import { SourceTags } from './source-tags.js';
import { StateStore, STATE_FILE } from './state-store.js';
import { REPO_DIRS, REPO_FILES } from './formats.js';

export type { Database };
export { BlobWriter } from './blob-writer.js';
export type { BlobSink, NewBlob } from './blob-writer.js';
export type { CheckOptions, CheckReport } from './check.js';
export type { WriterScope } from './index/blob-store.js';
export type { PackRecord, SessionRecord } from './index/tables.js';

/** What the index knows of one blob. */
export type { BlobRecord } from './blob-index.js';
export type { BlobView, Located } from './copy-index.js';

export interface RepositoryOptions {
  clock?: Clock;
  /**
   * What to do with an index.mdb that fails the meta-page check: unset, it is
   * moved aside and rebuilt (an agent's repository: the index is only a cache);
   * set, open fails with "index.mdb is damaged (...): <indexRepairHint>" (keepd).
   */
  indexRepairHint?: string;
  /** Told when a damaged index was moved aside and rebuilt (a warning for the user). */
  onIndexRebuilt?: (message: string) => void;
}

/**
 * One open repository (directory layout and write order: formats.ts): a facade over its stores, each in its own module
 * (index/blob-store.ts: blob, copy and pack tables; index/blob-reader.ts:
 * proven reads; snapshot/store.ts; sessions/registry.ts; keys/key-store.ts;
 * check.ts; blob-writer.ts), which agent and keepd use through it. The
 * index's stores are replaced when the index is rebuilt (rebuildIndex).
 */
export class Repository {
  readonly clock: Clock;
  private t!: IndexTables;
  /** the blob, copy and pack tables (index/blob-store.ts) */
  private index!: BlobStore;
  private reader!: BlobReader;
  private snapshotStore!: SnapshotStore;
  private sessions!: SessionRegistry;
  /** whose bytes of each blob a reader sees (copy-index.ts) */
  private blobViews!: BlobViews;
  private readonly keyStore: KeyStore;
  /** the packs published since the last index segment (index/segment-log.ts) */
  private readonly segmentLog: IndexSegmentLog;
  private state: StateStore | undefined;
  /** set when close starts: reads are refused from then on */
  private closed = false;
  /** the owner tag of each source (source-tags.ts), kept in state.mdb: copies and blob records refer to them */
  readonly sourceTags = new SourceTags((create) => (create || this.state || fs.existsSync(path.join(this.dir, STATE_FILE)) ? this.stateStore().env : undefined));

  private constructor(
    readonly dir: string,
    readonly config: RepoConfig,
    opts: RepositoryOptions,
    /** where packs, snapshot records and key files are (store/repo-storage.ts) */
    readonly storage: RepoStorage,
  ) {
    this.clock = opts.clock ?? processClock();
    this.keyStore = new KeyStore(storage.keyFiles);
    let journal: SegmentJournal | undefined | null = null;
    this.segmentLog = new IndexSegmentLog(storage, this.clock, () => (journal === null ? (journal = stateSegmentJournal(dir, (name) => this.database(name))) : journal));
    this.openIndex();
  }

  /** whose bytes of each blob a reader sees (copy-index.ts) */
  get views(): BlobViews {
    return this.blobViews;
  }

  private openIndex(): void {
    const t = (this.t = openIndexTables(path.join(this.dir, INDEX_FILE)));
    this.blobViews = new BlobViews(t.blobs, t.copies, this.sourceTags);
    this.index = new BlobStore(t, this.clock, this.storage);
    this.reader = new BlobReader(this.storage);
    this.sessions = new SessionRegistry(t.env, t.sessions, this.clock);
    this.snapshotStore = new SnapshotStore(t.env, t.snaps, this.index, this.blobViews, this.reader, this.sessions, this.storage, this.clock);
  }

  get packsDir(): string {
    return path.join(this.dir, REPO_DIRS.packs);
  }

  static exists(dir: string): boolean {
    return fs.existsSync(path.join(dir, REPO_FILES.config));
  }

  /** Create an empty repository in `dir` (which may exist but must not hold one). */
  /** `config`: adopt another repository's config (a replica is the same repository: same id, same chunker). */
  static async init(dir: string, opts: RepositoryOptions & { chunker?: ChunkerParams; config?: RepoConfig } = {}): Promise<Repository> {
    if (Repository.exists(dir)) throw new KeepError('ALREADY_EXISTS', `${dir} already holds a repository`);
    for (const d of Object.values(REPO_DIRS)) fs.mkdirSync(path.join(dir, d), { recursive: true });
    const clock = opts.clock ?? processClock();
    const config = opts.config ?? newRepoConfig(new Date(clock.now()), opts.chunker);
    const storage = await openRepoStorage(dir);
    try {
      await storage.writeConfig(JSON.stringify(config, null, 2) + '\n');
    } finally {
      await storage.close();
    }
    return Repository.open(dir, opts);
  }

  static async open(dir: string, opts: RepositoryOptions = {}): Promise<Repository> {
    let text: string;
    try {
      text = fs.readFileSync(path.join(dir, REPO_FILES.config), 'utf8');
    } catch {
      throw new KeepError('NOT_A_REPOSITORY', `${dir} is not a Keep repository (no config.json); run \`keep init\` first`);
    }
    const config = parseRepoConfig(text, path.join(dir, REPO_FILES.config));
    for (const d of Object.values(REPO_DIRS)) fs.mkdirSync(path.join(dir, d), { recursive: true });
    const clock = opts.clock ?? processClock();
    const storage = await openRepoStorage(dir);
    let repo: Repository;
    try {
      await storage.attach(text);
      await checkIndexFile(dir, clock, opts, storage);
      repo = new Repository(dir, config, { ...opts, clock }, storage);
    } catch (e) {
      await storage.close();
      throw e;
    }
    try {
      // An index whose rebuild an earlier version left unfinished (it rebuilt in place).
      if (!repo.index.isBuilt()) await repo.rebuildIndex();
      else {
        await repo.index.migrateOldBlobTables();
        await repo.snapshotStore.reconcile();
      }
    } catch (e) {
      await repo.close();
      throw e;
    }
    return repo;
  }

  /**
   * `keepd rebuild-index`: rebuild DIR's index from its packs and snapshot
   * files without opening the current index.mdb (which may crash LMDB). Server
   * state still kept in an index written before state.mdb existed moves out
   * first, when that index passes the meta-page check. `copies`: the old
   * index's per-source copies, where the caller could read them; `fromTrailers`:
   * ignore the index segments and read every pack's trailer.
   */
  static async rebuild(dir: string, opts: RepositoryOptions & { copies?: readonly Copy[]; fromTrailers?: boolean } = {}): Promise<RebuildReport> {
    if (!Repository.exists(dir)) throw new KeepError('NOT_A_REPOSITORY', `${dir} is not a Keep repository (no config.json)`);
    const storage = await openRepoStorage(dir);
    try {
      await storage.attach(fs.readFileSync(path.join(dir, REPO_FILES.config), 'utf8'));
      return await rebuildClosedIndex(dir, opts.clock ?? processClock(), storage, opts.copies, opts.fromTrailers);
    } finally {
      await storage.close();
    }
  }

  /** Open `dir`, run `fn`, always close: for one-shot commands. */
  static async using<T>(dir: string, fn: (repo: Repository) => Promise<T>, opts: RepositoryOptions = {}): Promise<T> {
    const repo = await Repository.open(dir, opts);
    try {
      return await fn(repo);
    } finally {
      await repo.close();
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.segmentLog.flush();
    await this.t.close();
    await this.state?.close();
    await this.storage.close();
  }

  /**
   * The server's durable state (tokens, source tags, replicas, replication):
   * state.mdb, opened on first use, which an index rebuild never touches.
   * Server state kept in the index by an earlier version moves there then.
   */
  stateStore(): StateStore {
    this.state ??= StateStore.open(this.dir, this.t.env);
    return this.state;
  }

  /**
   * A named LMDB database in the server's durable state (state.mdb); core
   * never reads it.
   */
  database<V = unknown, K extends string | Buffer = string>(name: string, opts: { binaryKeys?: boolean; dupSort?: boolean } = {}): Database<V, K> {
    return this.stateStore().database<V, K>(name, opts);
  }

  /**
   * A named LMDB database in the index, for server data that can be derived
   * again after a rebuild (blob ownership): an index rebuild starts it empty.
   */
  indexDatabase<V = unknown, K extends string | Buffer = string>(name: string, opts: { binaryKeys?: boolean; dupSort?: boolean } = {}): Database<V, K> {
    if (ENGINE_TABLES.includes(name)) throw new KeepError('INVALID_ARGUMENT', `database name ${name} is the engine's own`);
    return this.t.env.openDB({ name, ...(opts.binaryKeys ? { keyEncoding: 'binary' } : {}), ...(opts.dupSort ? { dupSort: true } : {}) }) as Database<V, K>;
  }

  /** Run `fn` in one LMDB write transaction on the index (durable when the promise resolves). */
  transaction<T>(fn: () => T): Promise<T> {
    return this.t.env.transaction(fn);
  }

  // ---- keys (keys/key-store.ts) ---------------------------------------------

  /** The usable key files (damaged or out-of-bounds ones are left out: damagedKeyFiles lists them). */
  keyFiles(): KeyFile[] {
    return this.keyStore.files();
  }

  /** Key files that do not parse or break the bounds, each with why: every reader skips them, an admin removes them. */
  damagedKeyFiles(): { id: string; problem: string }[] {
    return this.keyStore.damaged();
  }

  addKeyFile(f: KeyFile): Promise<void> {
    return this.keyStore.add(f);
  }

  /** Remove a key file, damaged ones included; never the last usable one. */
  removeKeyFile(id: string): Promise<void> {
    return this.keyStore.remove(id);
  }

  /**
   * The right to write the storage, held by keepd serve until it stops: a
   * bucket's writer lease (KeepError LOCKED while another keepd holds it).
   */
  holdWriter(holder: string): Promise<WriterHold> {
    return this.storage.holdWriter(holder, this.clock);
  }

  /**
   * `fn` under the writer lease, for one-shot commands that change the
   * storage (prune, forget): on a bucket a keepd of another host or data
   * directory refuses them (LOCKED); one of this data directory shares its
   * lease (holdWriter).
   */
  async asWriter<T>(holder: string, fn: () => Promise<T>): Promise<T> {
    const hold = await this.holdWriter(holder);
    try {
      return await fn();
    } finally {
      await hold.release();
    }
  }

  // ---- blobs (index/blob-store.ts, index/blob-reader.ts) ---------------------

  lookup(id: Id): BlobRecord | undefined {
    return this.index.lookup(id);
  }

  has(id: Id): boolean {
    return this.index.has(id);
  }

  /** The tag of the writer that stored `id` (openWriter's `owner`), if it had one. */
  ownerOf(id: Id): number | undefined {
    return this.index.ownerOf(id);
  }

  /** Which of `ids` the repository lacks; present ones get `seen` renewed (BlobStore.missing). */
  missing(ids: Id[]): Promise<Id[]> {
    return this.index.missing(ids);
  }

  /** Renew `seen` of each blob, and of owner `tag`'s copy of it when it has one. */
  touch(ids: Id[], now = this.clock.now(), tag?: number): Promise<void> {
    return this.index.touch(ids, now, tag);
  }

  /**
   * `owner`: a tag (> 0) recorded in every blob this writer is first to store (keepd: the session's source).
   * `owns` (with `owner`): the blobs the owner may use; any other stored id this writer receives is stored
   * again as the owner's copy instead of deduplicated against bytes it does not own.
   */
  openWriter(opts: WriterScope = {}): BlobWriter {
    if (opts.owns && !opts.owner) throw new KeepError('INTERNAL', 'a scoped writer needs an owner tag');
    return new BlobWriter(this, opts);
  }

  /** Record a pack about to be published, for its index segment (BlobWriter: while the pack's fsync runs). Never rejects. */
  journalPack(p: { id: string; size: number }): Promise<void> {
    return this.segmentLog.intend(p);
  }

  /** Make a sealed pack readable where the storage keeps packs (BlobWriter, repack); index it after. `journaled`: journalPack recorded it. */
  async publishPack(p: SealedPack, journaled = false): Promise<void> {
    if (!journaled) await this.segmentLog.intend(p); // journaled first: a crash right after the publish still finds the pack recorded
    try {
      await this.storage.publishPack(p);
    } catch (e) {
      await this.segmentLog.abandon(p.id);
      throw e;
    }
    this.segmentLog.add(p);
  }

  /** Write the index segment a killed process never wrote, for the packs state.mdb says wait for one (keepd, once it holds the right to write). */
  recoverIndexSegments(): Promise<number> {
    return this.segmentLog.recover();
  }

  /** Write the packs published since the last index segment as one (keepd: before it gives its writer lease back). Never rejects. */
  flushIndexSegments(): Promise<void> {
    return this.segmentLog.flush();
  }

  /** Index a pack durable in packs/ (BlobWriter); returns the ids another writer indexed first under another owner tag. */
  indexPack(id: string, size: number, entries: IndexEntry[], scope: WriterScope = {}): Promise<Id[]> {
    return this.index.indexPack(id, size, entries, scope);
  }

  readBlob(id: Id, view: BlobView = this.views.primary): Promise<Buffer> {
    return this.whileOpen(() => this.reader.readBlob(id, view));
  }

  /** readBlob, with the whole storage hash it proved (the index keeps only a prefix); `view` picks whose bytes. */
  readStored(id: Id, view: BlobView = this.views.primary): Promise<StoredBytes> {
    return this.whileOpen(() => this.reader.readStored(id, view));
  }

  /** The blobs from `ids[from]` on that lie close together in one pack, read at once (BlobReader.readNearby). */
  readNearby(ids: Id[], from: number, limits: { run: number; gap: number }, view: BlobView = this.views.primary): Promise<{ id: Id; data: StoredBytes | Error }[]> {
    return this.whileOpen(() => this.reader.readNearby(ids, from, limits, view));
  }

  /**
   * A blob read, refused once close has started: a read racing close reached
   * lmdb-js while it waited for its last write, and its read-txn timer then
   * threw, uncaught, ending the process.
   */
  private whileOpen<T>(read: () => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(new KeepError('UNAVAILABLE', 'the repository is closed'));
    return read();
  }

  // ---- garbage collection (gc/prune.ts holds the rules; index/blob-store.ts the writes) ----

  sweepBlobs(records: Iterable<{ id: Id; tag?: number }>, cutoff: number, batchSize?: number): Promise<number> {
    return this.index.sweepBlobs(records, cutoff, batchSize);
  }

  /** Live blobs and bytes per pack (gc/pack-usage.ts); close() the result. */
  packUsage(opts: PackUsageOptions = {}): PackUsage {
    return this.index.packUsage(opts);
  }

  switchBlobs(pack: string, size: number, count: number, moves: BlobMove[]): Promise<void> {
    return this.index.switchBlobs(pack, size, count, moves);
  }

  hasPack(id: string): boolean {
    return this.index.hasPack(id);
  }

  dropPacks(ids: string[], deleteFiles = true): Promise<{ id: string; size: number }[]> {
    return this.index.dropPacks(ids, deleteFiles);
  }

  adoptPack(p: StoredPack): Promise<boolean> {
    return this.index.adoptPack(p);
  }

  /** Stored packs that the index does not know (orphans). */
  unindexedPackFiles(): Promise<StoredPack[]> {
    return this.index.unindexedPackFiles();
  }

  blobCount(): number {
    return this.index.blobCount();
  }

  allBlobs(): Generator<[Id, BlobRecord]> {
    return this.index.allBlobs();
  }

  /** Every per-source copy (copy-index.ts). */
  allCopies(): Generator<Copy> {
    return this.index.allCopies();
  }

  /** Every record that points into a pack: primaries, then copies (the copy's owner tag as third item). */
  allRecords(): Generator<[Id, BlobRecord, number | undefined]> {
    return this.index.allRecords();
  }

  packCount(): number {
    return this.index.packCount();
  }

  /** Bytes in pack files on disk (what the repository costs). */
  storedBytes(): number {
    return this.index.storedBytes();
  }

  /** Bytes of the packs the index knows (their recorded sizes: cheap, for gauges). */
  indexedPackBytes(): number {
    return this.index.indexedPackBytes();
  }

  // ---- snapshots (snapshot/store.ts) -------------------------------------------

  snapshots(filter: { source?: string; host?: string } = {}): Snapshot[] {
    return this.snapshotStore.list(filter);
  }

  getSnapshot(id: string): Snapshot | undefined {
    return this.snapshotStore.get(id);
  }

  /** What is not stored of the DAG from `root`, as `view` sees it, and the trees walked (SnapshotStore.closure). */
  closure(root: Id, view: BlobView = this.views.primary): Promise<{ missing: string[]; trees: (Located & { id: Id })[] }> {
    return this.snapshotStore.closure(root, view);
  }

  /** Make a snapshot visible, only if every blob reachable from its root is stored (SnapshotStore.commit). */
  async commitSnapshot(s: NewSnapshot, opts: CommitOptions = {}): Promise<Snapshot> {
    const snap = await this.snapshotStore.commit(s, opts);
    this.segmentLog.committed(); // the snapshot's packs get a segment soon, off the commit's path (an accelerator: a failure only warns)
    return snap;
  }

  /** A snapshot copied from another repository (sync) keeps its id; same closure rule. */
  importSnapshot(s: Snapshot, view?: BlobView): Promise<Snapshot> {
    return this.snapshotStore.importSnapshot(s, view);
  }

  /** Whether a tree's whole DAG was proven stored (in `view`) since the last sweep. */
  isComplete(id: Id, view: BlobView = this.views.primary): boolean {
    return this.snapshotStore.isComplete(id, view);
  }

  /** Incremented by every GC sweep; "complete" marks from earlier epochs are not trusted. */
  gcEpoch(): number {
    return this.index.gcEpoch();
  }

  /** Rewrite a record with new tags (`keep tag`: SnapshotStore.replace). */
  replaceSnapshot(oldId: string, next: Replacement): Promise<Snapshot> {
    return this.snapshotStore.replace(oldId, next);
  }

  /** Remove snapshots (forget); never one that an open session builds on. */
  removeSnapshots(ids: string[]): Promise<void> {
    return this.snapshotStore.remove(ids);
  }

  // ---- writer sessions (sessions/registry.ts) ------------------------------------

  /** Record an open writer session: GC keeps what it was told it need not upload, forget keeps its parent. */
  registerSession(id: string, rec: SessionRecord): Promise<void> {
    return this.sessions.register(id, rec);
  }

  renewSession(id: string, leaseUntil: number): Promise<void> {
    return this.sessions.renew(id, leaseUntil);
  }

  endSession(id: string): Promise<void> {
    return this.sessions.end(id);
  }

  /** endSession inside the caller's index write transaction (commitSnapshot's `alongside`). */
  endSessionNow(id: string): void {
    this.sessions.endNow(id);
  }

  /** Sessions whose lease has not ended (any process), oldest first. */
  liveSessions(now = this.clock.now()): (SessionRecord & { id: string })[] {
    return this.sessions.live(now);
  }

  // ---- maintenance ----------------------------------------------------------

  /**
   * Rebuild the whole index from pack trailers and snapshot files (aside,
   * then swapped in; index/rebuild.ts) and go on with the new one. Other
   * processes with the old index open keep writing into the replaced file:
   * keepd refuses this while it serves the directory.
   */
  async rebuildIndex(): Promise<RebuildReport> {
    if (StateStore.hasLegacyTables(this.t.env)) this.stateStore(); // server state moves out before its index goes
    // The packs do not say which source stored a blob: the copies go over to the new index (rebuild.ts).
    const copies = [...this.index.allCopies()];
    await this.t.close();
    try {
      return await rebuildIndexFile(this.dir, this.clock, this.storage, copies);
    } finally {
      this.openIndex();
    }
  }

  /** Structure, index against packs, storage hashes, snapshot closure (check.ts). Needs no key. */
  check(opts: CheckOptions = {}): Promise<CheckReport> {
    const pending = new DelayedDeletions(this);
    return checkRepository({ index: this.index, snapshots: this.snapshotStore, reader: this.reader, views: this.views, storage: this.storage, tmpDir: path.join(this.dir, REPO_DIRS.tmp), pendingDeletion: (id) => pending.has(id) }, opts);
  }
}
