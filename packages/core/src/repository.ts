import fs from 'node:fs';
import path from 'node:path';
import { RootDatabase, Database } from 'lmdb';

export type { Database };
import { BlobType, MAX_BLOB_SIZE } from './blob/format.js';
import { parseBlob } from './blob/seal.js';
import { BlobIndex, BlobRecord, decodeBlobRecordV2 } from './blob-index.js';
import { checkLmdbFile } from './index/meta-check.js';
import { listPackFiles, loadSnapshotFiles, rebuildIndexFile, RebuildReport } from './index/rebuild.js';
import { ENGINE_TABLES, INDEX_FILE, OLD_BLOB_TABLES, openIndexTables } from './index/tables.js';
import { StateStore, STATE_FILE } from './state-store.js';
import { BlobView, BlobViews, Copy, CopyIndex, Located } from './copy-index.js';
import { SourceTags } from './source-tags.js';
import { ChunkerParams } from './chunker.js';
import { Clock, processClock } from './clock.js';
import { newRepoConfig, parseRepoConfig, RepoConfig } from './config.js';
import { corrupt, KeepError } from './errors.js';
import { Id, storageHash, toHex } from './ids.js';
import { KeyFile } from './keys/keyfile.js';
import { parseKeyFile } from './keys/keyfile-check.js';
import { STALE_SESSION_RECORD_MS } from './margins.js';
import { PACK_TARGET_SIZE } from './pack/format.js';
import { BlobSpan, PackHandles, readBlobRun, readStoredAt, readTrailer, StoredBytes } from './pack/reader.js';
import { PackWriter, packPath } from './pack/writer.js';
import { checkCommitTime } from './snapshot/commit-time.js';
import { byTime, NewSnapshot, Snapshot } from './snapshot/snapshot.js';
import { atomicWrite, randomId } from './fsutil.js';
import { storageFailure } from './storage-space.js';

/**
 * Repository directory layout (the server's --data DIR, or an embedded KEEP_REPO):
 *
 *   config.json              plaintext config (config.ts)
 *   keys/<id>.json           wrapped master keys (keys/keyfile.ts)
 *   packs/<xx>/<id>.pack     pack files (pack/format.ts)
 *   snapshots/<id>.json      snapshot records, the durable copy (snapshot/snapshot.ts)
 *   tmp/                     packs being written; never indexed
 *   index.mdb                LMDB: blobs, per-source copies, packs, snapshots (a cache of packs/ and snapshots/, rebuilt from them)
 *   state.mdb                LMDB: the server's own state (state-store.ts); not rebuildable
 *   maintenance.lock         held by prune and index rebuilds (pid-lock.ts)
 *
 * Write order (each step durable before the next): pack bytes -> fsync ->
 * rename into packs/ -> index; snapshot file -> fsync -> LMDB. A crash between
 * steps leaves bytes nobody points at (garbage for prune), never a pointer to
 * missing bytes. The index can be rebuilt from packs/ and snapshots/
 * (index/rebuild.ts) and is checked before it is opened (index/meta-check.ts).
 */

/** What the index knows of one blob. */
export type { BlobRecord } from './blob-index.js';
export type { BlobView, Located } from './copy-index.js';

/** An open writer session as the index records it (keepd's, or an embedded backup's). */
export interface SessionRecord {
  source: string;
  host: string;
  /** the snapshot this session builds on: protected from forget while the session lives */
  parent?: string;
  tokenId?: string;
  started: number;
  leaseUntil: number;
}

export interface PackRecord {
  size: number;
  blobs: number;
  created: number;
}

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

export interface CheckOptions {
  /** re-hash every blob's stored bytes */
  readData?: boolean;
  /** re-hash this percentage of blobs (chosen at random) */
  readDataSubset?: number;
}

export interface CheckReport {
  ok: boolean;
  snapshots: number;
  packs: number;
  blobs: number;
  blobs_read: number;
  bytes_read: number;
  errors: string[];
  /** hex ids of blobs found damaged or missing */
  damaged_blobs: string[];
  orphan_packs: string[];
  unfinished_packs: number;
}

/**
 * Routine writes to the blob table go in transactions of at most this many
 * records. LMDB copies every page a transaction writes and can reuse the old
 * copies only after the next transaction, so one transaction over thousands
 * of random ids rewrites nearly every leaf and leaves the file at 2-2.5x its
 * live pages; small ones keep it near its live size (the index counts in the
 * repository's size). Each batch is a consistent state on its own.
 */
const BLOB_WRITE_BATCH = 16;

/** A copy of `items` in blob-id order, for inBatches. */
function byId<T>(items: readonly T[], id: (x: T) => Buffer): T[] {
  return [...items].sort((a, b) => Buffer.compare(id(a), id(b)));
}

export class Repository {
  readonly clock: Clock;
  // The index's tables: replaced when the index is rebuilt (rebuildIndex).
  private env!: RootDatabase;
  private blobs!: BlobIndex;
  private packs!: Database<PackRecord, string>;
  private snaps!: Database<Snapshot, string>;
  private meta!: Database<unknown, string>;
  private sessionsDb!: Database<SessionRecord, string>;
  /** per-source copies of blobs (copy-index.ts) */
  private copies!: CopyIndex;
  /** whose bytes of each blob a reader sees (copy-index.ts) */
  private blobViews!: BlobViews;
  private state: StateStore | undefined;
  /** the owner tag of each source (source-tags.ts), kept in state.mdb: copies and blob records refer to them */
  readonly sourceTags = new SourceTags((create) => (create || this.state || fs.existsSync(path.join(this.dir, STATE_FILE)) ? this.stateStore().env : undefined));
  private readonly handles = new PackHandles();

  private constructor(
    readonly dir: string,
    readonly config: RepoConfig,
    opts: RepositoryOptions,
  ) {
    this.clock = opts.clock ?? processClock();
    this.openIndex();
  }

  /** whose bytes of each blob a reader sees (copy-index.ts) */
  get views(): BlobViews {
    return this.blobViews;
  }

  private get indexFile(): string {
    return path.join(this.dir, INDEX_FILE);
  }

  private openIndex(): void {
    ({ env: this.env, blobs: this.blobs, copies: this.copies, packs: this.packs, snaps: this.snaps, meta: this.meta, sessions: this.sessionsDb } = openIndexTables(this.indexFile));
    this.blobViews = new BlobViews(this.blobs, this.copies, this.sourceTags);
  }

  get packsDir(): string {
    return path.join(this.dir, 'packs');
  }
  private get tmpDir(): string {
    return path.join(this.dir, 'tmp');
  }
  private get snapsDir(): string {
    return path.join(this.dir, 'snapshots');
  }
  private get keysDir(): string {
    return path.join(this.dir, 'keys');
  }

  static exists(dir: string): boolean {
    return fs.existsSync(path.join(dir, 'config.json'));
  }

  /** Create an empty repository in `dir` (which may exist but must not hold one). */
  /** `config`: adopt another repository's config (a replica is the same repository: same id, same chunker). */
  static async init(dir: string, opts: RepositoryOptions & { chunker?: ChunkerParams; config?: RepoConfig } = {}): Promise<Repository> {
    if (Repository.exists(dir)) throw new KeepError('ALREADY_EXISTS', `${dir} already holds a repository`);
    for (const d of ['packs', 'tmp', 'snapshots', 'keys']) fs.mkdirSync(path.join(dir, d), { recursive: true });
    const clock = opts.clock ?? processClock();
    const config = opts.config ?? newRepoConfig(new Date(clock.now()), opts.chunker);
    atomicWrite(path.join(dir, 'config.json'), JSON.stringify(config, null, 2) + '\n');
    return Repository.open(dir, opts);
  }

  static async open(dir: string, opts: RepositoryOptions = {}): Promise<Repository> {
    let text: string;
    try {
      text = fs.readFileSync(path.join(dir, 'config.json'), 'utf8');
    } catch {
      throw new KeepError('NOT_A_REPOSITORY', `${dir} is not a Keep repository (no config.json); run \`keep init\` first`);
    }
    const config = parseRepoConfig(text, path.join(dir, 'config.json'));
    for (const d of ['packs', 'tmp', 'snapshots', 'keys']) fs.mkdirSync(path.join(dir, d), { recursive: true });
    const clock = opts.clock ?? processClock();
    // Checked before LMDB maps it: LMDB crashes the process on a damaged file.
    const index = checkLmdbFile(path.join(dir, INDEX_FILE));
    if (index.kind === 'damaged' && opts.indexRepairHint) throw new KeepError('CORRUPT', `${path.join(dir, INDEX_FILE)} is damaged (${index.reason}): ${opts.indexRepairHint}`);
    // A lost or damaged index is rebuilt from the packs and snapshot files, aside, then swapped in.
    if (index.kind !== 'ok') {
      const r = await rebuildIndexFile(dir, clock);
      if (index.kind === 'damaged') opts.onIndexRebuilt?.(`${INDEX_FILE} was damaged (${index.reason}): rebuilt from the packs (${r.blobs} blobs); the damaged file is ${r.replaced}`);
    }
    const repo = new Repository(dir, config, { ...opts, clock });
    try {
      // An index whose rebuild an earlier version left unfinished (it rebuilt in place).
      if (repo.meta.get('built') !== true) await repo.rebuildIndex();
      else {
        await repo.migrateOldBlobTables();
        await repo.reconcileSnapshots();
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
   * index's per-source copies, where the caller could read them.
   */
  static async rebuild(dir: string, opts: RepositoryOptions & { copies?: readonly Copy[] } = {}): Promise<RebuildReport> {
    if (!Repository.exists(dir)) throw new KeepError('NOT_A_REPOSITORY', `${dir} is not a Keep repository (no config.json)`);
    const file = path.join(dir, INDEX_FILE);
    if (!fs.existsSync(path.join(dir, STATE_FILE)) && checkLmdbFile(file).kind === 'ok') {
      const t = openIndexTables(file);
      try {
        if (StateStore.hasLegacyTables(t.env)) await StateStore.open(dir, t.env).close();
      } finally {
        await t.env.close();
      }
    }
    return rebuildIndexFile(dir, opts.clock ?? processClock(), opts.copies);
  }

  /** An index written by an earlier version: its blob records move to the current table, each table in one transaction. */
  private async migrateOldBlobTables(): Promise<void> {
    for (const name of OLD_BLOB_TABLES) {
      const msgpack = name === 'blobs';
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
    await this.handles.close();
    await this.env.close();
    await this.state?.close();
  }

  /**
   * The server's durable state (tokens, source tags, replicas, replication):
   * state.mdb, opened on first use, which an index rebuild never touches.
   * Server state kept in the index by an earlier version moves there then.
   */
  stateStore(): StateStore {
    this.state ??= StateStore.open(this.dir, this.env);
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
    return this.env.openDB({ name, ...(opts.binaryKeys ? { keyEncoding: 'binary' } : {}), ...(opts.dupSort ? { dupSort: true } : {}) }) as Database<V, K>;
  }

  /** Run `fn` in one LMDB write transaction on the index (durable when the promise resolves). */
  transaction<T>(fn: () => T): Promise<T> {
    return this.env.transaction(fn);
  }

  // ---- keys --------------------------------------------------------------

  /** The usable key files (damaged or out-of-bounds ones are left out: damagedKeyFiles lists them). */
  keyFiles(): KeyFile[] {
    return this.readKeyFiles().files;
  }

  /** Key files that do not parse or break the bounds, each with why: every reader skips them, an admin removes them. */
  damagedKeyFiles(): { id: string; problem: string }[] {
    return this.readKeyFiles().damaged;
  }

  private readKeyFiles(): { files: KeyFile[]; damaged: { id: string; problem: string }[] } {
    const files: KeyFile[] = [];
    const damaged: { id: string; problem: string }[] = [];
    for (const n of fs.readdirSync(this.keysDir).filter((n) => n.endsWith('.json')).sort()) {
      const id = n.slice(0, -'.json'.length);
      try {
        const f = parseKeyFile(fs.readFileSync(path.join(this.keysDir, n), 'utf8'), id);
        if (f.id !== id) throw new KeepError('CORRUPT', `key file ${id} is damaged: it holds key ${f.id}`);
        files.push(f);
      } catch (e) {
        damaged.push({ id, problem: (e as Error).message });
      }
    }
    return { files, damaged };
  }

  addKeyFile(f: KeyFile): void {
    if (!/^[0-9a-f]{16}$/.test(f.id)) throw new KeepError('INVALID_ARGUMENT', 'bad key file id');
    atomicWrite(path.join(this.keysDir, `${f.id}.json`), JSON.stringify(f, null, 2) + '\n');
  }

  /** Remove a key file, damaged ones included; never the last usable one. */
  removeKeyFile(id: string): void {
    if (!/^[0-9a-f]{16}$/.test(id)) throw new KeepError('INVALID_ARGUMENT', `${id} is not a key id (16 hex digits)`);
    const file = path.join(this.keysDir, `${id}.json`);
    if (!fs.existsSync(file)) throw new KeepError('NOT_FOUND', `no key ${id}`);
    const usable = this.keyFiles();
    if (usable.length === 1 && usable[0].id === id) throw new KeepError('INVALID_ARGUMENT', 'refusing to remove the last key: the repository would become unreadable');
    fs.rmSync(file);
  }

  // ---- blobs ---------------------------------------------------------------

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
   * `owner`: a tag (> 0) recorded in every blob this writer is first to store (keepd: the session's source).
   * `owns` (with `owner`): the blobs the owner may use; any other stored id this writer receives is stored
   * again as the owner's copy instead of deduplicated against bytes it does not own.
   */
  openWriter(opts: WriterScope = {}): BlobWriter {
    if (opts.owns && !opts.owner) throw new KeepError('INTERNAL', 'a scoped writer needs an owner tag');
    return new BlobWriter(this, opts);
  }

  /**
   * Called by BlobWriter once a pack is durable in packs/. Returns the ids
   * another writer had indexed first under another owner tag, for the caller
   * to record its ownership elsewhere.
   */
  async indexPack(id: string, size: number, entries: { id: Buffer; type: number; offset: number; length: number; hash: Buffer }[], scope: WriterScope = {}): Promise<Id[]> {
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

  async readBlob(id: Id, view: BlobView = this.views.primary): Promise<Buffer> {
    return (await this.readStored(id, view)).bytes;
  }

  /** readBlob, with the whole storage hash it proved (the index keeps only a prefix); `view` picks whose bytes. */
  async readStored(id: Id, view: BlobView = this.views.primary): Promise<StoredBytes> {
    const r = view(id)?.record;
    if (!r) throw new KeepError('NOT_FOUND', `blob ${toHex(id)} is not in the repository`);
    const at = (x: BlobRecord) => readStoredAt(packPath(this.packsDir, x.pack), { id, offset: x.offset, length: x.length, hash: x.hash }, this.handles);
    try {
      return await at(r);
    } catch (e) {
      // A concurrent prune may have repacked the blob between lookup and read: look again once.
      const now = view(id)?.record;
      if (now && now.pack !== r.pack) return at(now);
      throw e;
    }
  }

  /**
   * The blobs from `ids[from]` on that lie close together in one pack, in
   * request order (a restore asks in the order a backup wrote): read with one
   * call of at most `limits.run` bytes, skipping gaps of at most `limits.gap`,
   * and each proven against its storage hash. A damaged blob comes back as
   * its CORRUPT error in its place, so the ones before it can still be used
   * (readBlob reads it again alone). NOT_FOUND when `ids[from]` is unknown.
   */
  async readNearby(ids: Id[], from: number, limits: { run: number; gap: number }, view: BlobView = this.views.primary): Promise<{ id: Id; data: StoredBytes | Error }[]> {
    const first = view(ids[from])?.record;
    if (!first) throw new KeepError('NOT_FOUND', `blob ${toHex(ids[from])} is not in the repository`);
    const run: BlobSpan[] = [{ id: ids[from], offset: first.offset, length: first.length, hash: first.hash }];
    let end = first.offset + first.length;
    for (let j = from + 1; j < ids.length; j++) {
      const r = view(ids[j])?.record;
      if (!r || r.pack !== first.pack || r.offset < end || r.offset - end > limits.gap || r.offset + r.length - first.offset > limits.run) break;
      run.push({ id: ids[j], offset: r.offset, length: r.length, hash: r.hash });
      end = r.offset + r.length;
    }
    let data: (StoredBytes | Error)[];
    try {
      data = await readBlobRun(packPath(this.packsDir, first.pack), run, this.handles);
    } catch {
      // A prune may have repacked them since the lookup: readStored looks again.
      data = await Promise.all(run.map((b) => this.readStored(b.id, view).catch((e: Error) => e)));
    }
    return run.map((b, k) => ({ id: b.id, data: data[k] }));
  }

  // ---- garbage collection (gc/prune.ts holds the rules) -------------------

  /**
   * Remove unreferenced blobs (`candidates`: primaries, `copies`: per-source
   * copies) from the index in one transaction, skipping any record touched
   * since `cutoff` (a session relied on it after the mark). Bumps the GC
   * epoch so tree "complete" marks are re-proven. Returns how many records went.
   */
  async sweepBlobs(candidates: Id[], cutoff: number, copies: { id: Id; tag: number }[] = []): Promise<number> {
    let removed = 0;
    await this.env.transaction(() => {
      for (const { id, tag } of copies) {
        const c = this.copies.get(id, tag);
        if (c && c.seen < cutoff) this.copies.remove(id, tag), removed++;
      }
      for (const id of candidates) {
        const r = this.blobs.get(id);
        if (!r || r.seen >= cutoff) continue;
        this.blobs.remove(id);
        removed++;
      }
      this.meta.put('gcEpoch', this.gcEpoch() + 1);
    });
    return removed;
  }

  /**
   * Live blobs and bytes per indexed pack. `createdBefore` leaves out packs
   * recorded at or after it: a pack is indexed in several transactions, so a
   * young one may look sparse or empty only because its indexing is not done.
   */
  packUsage(opts: { createdBefore?: number } = {}): Map<string, { size: number; liveBlobs: number; liveBytes: number }> {
    const usage = new Map<string, { size: number; liveBlobs: number; liveBytes: number }>();
    for (const { key, value } of this.packs.getRange()) {
      if (opts.createdBefore === undefined || value.created < opts.createdBefore) usage.set(key, { size: value.size, liveBlobs: 0, liveBytes: 0 });
    }
    for (const [, r] of this.allRecords()) {
      const u = usage.get(r.pack);
      if (u) u.liveBlobs++, (u.liveBytes += r.length);
    }
    return usage;
  }

  /**
   * Point moved blobs at their new pack (only those still where the mover
   * found them) and record the new pack, in one transaction.
   */
  async switchBlobs(pack: string, size: number, count: number, moves: { id: Id; copyOf?: number; oldPack: string; oldOffset: number; pack: string; offset: number }[]): Promise<void> {
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
   * Forget packs the index no longer points into, then delete their files.
   * A pack some blob still points to is kept (checked in the transaction).
   */
  async dropPacks(ids: string[]): Promise<string[]> {
    if (ids.length === 0) return [];
    const drop = new Set(ids);
    for (const [, r] of this.allRecords()) drop.delete(r.pack);
    await this.env.transaction(() => {
      for (const id of drop) this.packs.remove(id);
    });
    for (const id of drop) fs.rmSync(packPath(this.packsDir, id), { force: true });
    return [...drop];
  }

  /**
   * An orphan pack (on disk, not in the index) whose trailer is intact and
   * lists blobs the index lacks is indexed: an index that lost writes (a
   * rebuild racing a writer, an index restored from a copy) must not cost the
   * blobs only this pack holds. Returns false when there is nothing to adopt
   * (the trailer is damaged, or every blob is indexed elsewhere): the pack
   * is garbage then.
   */
  async adoptPack(p: { id: string; file: string }): Promise<boolean> {
    let entries;
    try {
      entries = await readTrailer(p.file);
    } catch {
      return false;
    }
    if (entries.every((e) => this.blobs.has(e.id))) return false;
    await this.indexPack(p.id, fs.statSync(p.file).size, entries);
    return true;
  }

  /** Pack files on disk that the index does not know (orphans). */
  unindexedPackFiles(): { id: string; file: string }[] {
    return this.packFiles().filter((p) => !this.packs.get(p.id));
  }

  blobCount(): number {
    return this.blobs.getCount();
  }

  *allBlobs(): Generator<[Id, BlobRecord]> {
    for (const { key, value } of this.blobs.getRange()) yield [key, value];
  }

  /** Every per-source copy (copy-index.ts). */
  allCopies(): Generator<{ id: Id; tag: number; record: BlobRecord }> {
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

  /** Bytes in pack files on disk (what the repository costs). */
  storedBytes(): number {
    let n = 0;
    for (const p of this.packFiles()) n += fs.statSync(p.file).size;
    return n;
  }

  // ---- snapshots -----------------------------------------------------------

  snapshots(filter: { source?: string; host?: string } = {}): Snapshot[] {
    const out: Snapshot[] = [];
    for (const { value } of this.snaps.getRange()) {
      if (filter.source !== undefined && value.source !== filter.source) continue;
      if (filter.host !== undefined && value.host !== filter.host) continue;
      out.push(value);
    }
    return out.sort(byTime);
  }

  getSnapshot(id: string): Snapshot | undefined {
    return this.snaps.get(id);
  }

  /**
   * Walk the DAG from `root` and list what is not stored, as `view` sees it
   * (a source-scoped commit: what its source may use). Trees already proven
   * complete in the view (part of an earlier committed snapshot) are not walked again.
   */
  async closure(root: Id, view: BlobView = this.views.primary): Promise<{ missing: string[]; trees: (Located & { id: Id })[] }> {
    const missing: string[] = [];
    const walked: (Located & { id: Id })[] = [];
    // The unscoped view asks the blob table for presence without decoding records.
    const has = view === this.views.primary ? (id: Id) => this.blobs.has(id) : (id: Id) => view(id) !== undefined;
    const seen = new Set<string>();
    const stack: Id[] = [root];
    const epoch = this.gcEpoch();
    while (stack.length) {
      const id = stack.pop()!;
      const hex = toHex(id);
      if (seen.has(hex)) continue;
      seen.add(hex);
      const at = view(id);
      if (!at) {
        missing.push(hex);
        continue;
      }
      const r = at.record;
      if (r.type !== BlobType.Tree) throw corrupt(`blob ${hex} is referenced as a tree but stored as data`);
      if (r.complete !== undefined && r.complete === epoch) continue;
      walked.push({ ...at, id });
      const { edges } = parseBlob(await this.readBlob(id, view));
      for (const e of edges) {
        if (e.type === BlobType.Tree) stack.push(e.id);
        else if (!has(e.id)) {
          const h = toHex(e.id);
          if (!seen.has(h)) missing.push(h), seen.add(h);
        }
      }
    }
    return { missing, trees: walked };
  }

  /**
   * Make a snapshot visible, only if every blob reachable from its root is
   * stored. The writer's id (covered by its MAC) is kept unless taken; this
   * repository's clock is recorded as server_time and checked against the
   * snapshot's (`started`: when the writer's session began, on this clock).
   * `view`: whose bytes count as stored (a scoped source's: see closure).
   */
  async commitSnapshot(s: NewSnapshot, opts: { started?: number; view?: BlobView } = {}): Promise<Snapshot> {
    const now = this.clock.now();
    checkCommitTime(s.time, now, opts.started);
    if (s.mac !== undefined && !/^[0-9a-f]{64}$/.test(s.mac)) throw new KeepError('INVALID_ARGUMENT', 'snapshot mac must be 64 hex digits');
    const id = s.id || randomId();
    if (!/^[0-9a-f]{32}$/.test(id)) throw new KeepError('INVALID_ARGUMENT', `bad snapshot id ${id}`);
    // Append-only: a writer never replaces a record (its own or another source's).
    if (this.snaps.get(id) || fs.existsSync(path.join(this.snapsDir, `${id}.json`))) throw new KeepError('ALREADY_EXISTS', `snapshot ${id} exists`);
    return this.publish({ ...s, id, server_time: new Date(now).toISOString() }, opts.view);
  }

  /** A snapshot copied from another repository (sync) keeps its id; same closure rule. */
  async importSnapshot(s: Snapshot, view?: BlobView): Promise<Snapshot> {
    if (!/^[0-9a-f]{32}$/.test(s.id)) throw new KeepError('INVALID_ARGUMENT', `bad snapshot id ${s.id}`);
    if (this.snaps.get(s.id)) return this.snaps.get(s.id)!;
    return this.publish(s, view);
  }

  private async publish(snap: Snapshot, view: BlobView = this.views.primary): Promise<Snapshot> {
    const s = snap;
    const root = Buffer.from(s.root, 'hex');
    if (root.length !== 32) throw new KeepError('INVALID_ARGUMENT', 'snapshot root must be a 64-digit hex id');
    const { missing, trees } = await this.closure(root, view);
    if (missing.length) {
      throw new KeepError('INCOMPLETE', `snapshot refused: ${missing.length} blob(s) reachable from its root are not stored (first: ${missing[0]})`);
    }
    const epoch = this.gcEpoch();
    atomicWrite(path.join(this.snapsDir, `${snap.id}.json`), JSON.stringify(snap) + '\n');
    const now = this.clock.now();
    await this.snaps.put(snap.id, snap);
    // The marks only save later closure walks, so they may go in batches after the snapshot.
    // A sweep that ran during the walk makes these marks stale: only the epoch the walk saw is recorded.
    // A mark goes on the record the walk proved: a source's copy, or the primary.
    await this.inBatches(byId(trees, (x) => x.id), (batch) => {
      for (const t of batch) {
        if (t.copyOf !== undefined) {
          const c = this.copies.get(t.id, t.copyOf);
          if (c) this.copies.put(t.id, t.copyOf, { ...c, complete: epoch, seen: Math.max(c.seen, now) });
          continue;
        }
        const r = this.blobs.get(t.id);
        if (r) this.blobs.put(t.id, { ...r, complete: epoch, seen: Math.max(r.seen, now) });
      }
    });
    return snap;
  }

  /** Whether a tree's whole DAG was proven stored (in `view`) since the last sweep. */
  isComplete(id: Id, view: BlobView = this.views.primary): boolean {
    const r = view(id)?.record;
    return r?.complete !== undefined && r.complete === this.gcEpoch();
  }

  /** Incremented by every GC sweep; "complete" marks from earlier epochs are not trusted. */
  gcEpoch(): number {
    return (this.meta.get('gcEpoch') as number | undefined) ?? 0;
  }

  /**
   * Remove snapshots (forget). The snapshot file goes first: a crash between
   * the two steps leaves an LMDB record whose file is gone, which the next
   * open reconciles away. Never removes a snapshot that an open session builds on.
   */
  async removeSnapshots(ids: string[]): Promise<void> {
    const protectedIds = new Set(this.liveSessions().map((s) => s.parent).filter(Boolean));
    for (const id of ids) if (protectedIds.has(id)) throw new KeepError('PERMISSION_DENIED', `snapshot ${id} is the parent of an open backup session; forget it after that session ends`);
    for (const id of ids) fs.rmSync(path.join(this.snapsDir, `${id}.json`), { force: true });
    await this.env.transaction(() => {
      for (const id of ids) this.snaps.remove(id);
    });
  }

  // ---- writer sessions -------------------------------------------------------

  /** Record an open writer session: GC keeps what it was told it need not upload, forget keeps its parent. */
  async registerSession(id: string, rec: SessionRecord): Promise<void> {
    await this.sessionsDb.put(id, rec);
  }

  async renewSession(id: string, leaseUntil: number): Promise<void> {
    const r = this.sessionsDb.get(id);
    if (r) await this.sessionsDb.put(id, { ...r, leaseUntil });
  }

  async endSession(id: string): Promise<void> {
    await this.sessionsDb.remove(id);
  }

  /**
   * Sessions whose lease has not ended (any process), oldest first. Records of
   * sessions that ended a day ago (their process died) are dropped; not
   * sooner, so one process with a skewed clock cannot erase live leases.
   */
  liveSessions(now = this.clock.now()): (SessionRecord & { id: string })[] {
    const live: (SessionRecord & { id: string })[] = [];
    const expired: string[] = [];
    for (const { key, value } of this.sessionsDb.getRange()) {
      if (value.leaseUntil >= now) live.push({ id: key, ...value });
      else if (value.leaseUntil < now - STALE_SESSION_RECORD_MS) expired.push(key);
    }
    if (expired.length) void this.env.transaction(() => expired.forEach((k) => this.sessionsDb.remove(k)));
    return live.sort((a, b) => a.started - b.started);
  }

  /** Snapshot files written but not in LMDB (a crash between the two steps) are adopted. */
  private async reconcileSnapshots(): Promise<void> {
    await loadSnapshotFiles({ env: this.env, snaps: this.snaps }, this.snapsDir);
  }

  // ---- maintenance ----------------------------------------------------------

  private packFiles(): { id: string; file: string }[] {
    return listPackFiles(this.packsDir);
  }

  /**
   * Rebuild the whole index from pack trailers and snapshot files (aside,
   * then swapped in; index/rebuild.ts) and go on with the new one. Other
   * processes with the old index open keep writing into the replaced file:
   * keepd refuses this while it serves the directory.
   */
  async rebuildIndex(): Promise<RebuildReport> {
    if (StateStore.hasLegacyTables(this.env)) this.stateStore(); // server state moves out before its index goes
    // The packs do not say which source stored a blob: the copies go over to the new index (rebuild.ts).
    const copies = [...this.copies.all()];
    await this.env.close();
    try {
      return await rebuildIndexFile(this.dir, this.clock, copies);
    } finally {
      this.openIndex();
    }
  }

  /** Structure, index against packs, storage hashes, snapshot closure. Needs no key. */
  async check(opts: CheckOptions = {}): Promise<CheckReport> {
    const report: CheckReport = {
      ok: true,
      snapshots: 0,
      packs: 0,
      blobs: 0,
      blobs_read: 0,
      bytes_read: 0,
      errors: [],
      damaged_blobs: [],
      orphan_packs: [],
      unfinished_packs: 0,
    };
    const damaged = new Set<string>();
    const fail = (msg: string, blob?: string) => {
      report.errors.push(msg);
      if (blob && !damaged.has(blob)) damaged.add(blob), report.damaged_blobs.push(blob);
    };

    // Packs on disk against the packs the index knows.
    const sizes = new Map<string, number>();
    for (const p of this.packFiles()) {
      sizes.set(p.id, fs.statSync(p.file).size);
      if (!this.packs.get(p.id)) report.orphan_packs.push(p.id);
      try {
        await readTrailer(p.file);
      } catch (e) {
        fail(`pack ${p.id}: ${(e as Error).message}`);
      }
    }
    report.packs = sizes.size;
    report.unfinished_packs = fs.readdirSync(this.tmpDir).filter((n) => n.endsWith('.pack.tmp')).length;

    // Every indexed blob is inside a pack that exists; its bytes hash right when read.
    const pct = opts.readData ? 100 : (opts.readDataSubset ?? 0);
    for (const [id, r, copyOf] of this.allRecords()) {
      report.blobs++;
      const hex = toHex(id);
      const view = copyOf === undefined ? this.views.primary : (x: Id) => (x.equals(id) ? { record: r, copyOf } : undefined);
      const size = sizes.get(r.pack);
      if (size === undefined) {
        fail(`blob ${hex}: its pack ${r.pack} is missing`, hex);
        continue;
      }
      if (r.offset + r.length > size) {
        fail(`blob ${hex}: pack ${r.pack} is truncated (${size} bytes, blob ends at ${r.offset + r.length})`, hex);
        continue;
      }
      if (pct > 0 && (pct >= 100 || Math.random() * 100 < pct)) {
        try {
          const b = await this.readBlob(id, view);
          report.blobs_read++;
          report.bytes_read += b.length;
          const p = parseBlob(b);
          if (p.type !== r.type) fail(`blob ${hex}: stored type ${p.type} differs from the index's ${r.type}`, hex);
        } catch (e) {
          fail((e as Error).message, hex);
        }
      }
    }

    // Every snapshot's DAG is stored.
    for (const s of this.snapshots()) {
      report.snapshots++;
      try {
        const { missing } = await this.closure(Buffer.from(s.root, 'hex'), this.views.ofSource(s.source));
        for (const m of missing) fail(`snapshot ${s.id}: blob ${m} is missing`, m);
      } catch (e) {
        fail(`snapshot ${s.id}: ${(e as Error).message}`);
      }
    }
    report.ok = report.errors.length === 0;
    return report;
  }
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
    private readonly repo: Repository,
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
   * refuse blobs damaged in transit. The header and the hash are checked
   * before anything is looked up, so a bad blob is refused the same way
   * whether its id is stored or not (no existence oracle).
   */
  async add(id: Id, stored: Buffer, expectHash?: Buffer): Promise<boolean> {
    const hex = toHex(id);
    if (stored.length > MAX_BLOB_SIZE) throw new KeepError('INVALID_ARGUMENT', `blob ${hex} is ${stored.length} bytes, over the ${MAX_BLOB_SIZE} limit`);
    const { type } = parseBlob(stored);
    const hash = storageHash(stored);
    if (expectHash && !hash.equals(expectHash)) throw new KeepError('CORRUPT', `blob ${hex} arrived damaged (storage hash mismatch)`);
    if (this.pending.has(hex) || this.indexing.has(hex)) return false;
    // Storing a copy costs what storing a new blob costs: a scoped writer's timing says nothing of other owners.
    const { owner, owns } = this.scope;
    if (owns ? owns(id) : this.repo.has(id)) {
      await this.repo.touch([id], undefined, owns ? owner : undefined);
      return false;
    }
    this.pack ??= new PackWriter(path.join(this.repo.dir, 'tmp'), this.repo.packsDir);
    this.pack.add(id, type, stored, hash);
    this.pending.add(hex);
    this.bytesStored += stored.length;
    this.blobsStored++;
    if (this.pack.bytes >= PACK_TARGET_SIZE) await this.finishPack();
    return true;
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
      done = p.finish();
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
