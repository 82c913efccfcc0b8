import fs from 'node:fs';
import path from 'node:path';
import { open, RootDatabase, Database } from 'lmdb';

export type { Database };
import { BlobType, MAX_BLOB_SIZE } from './blob/format.js';
import { parseBlob } from './blob/seal.js';
import { BlobIndex, BlobRecord, decodeBlobRecordV2 } from './blob-index.js';
import { BlobView, BlobViews, COPIES_DB, CopyIndex, Located } from './copy-index.js';
import { SOURCE_TAGS_DB, SourceTags } from './source-tags.js';
import { ChunkerParams } from './chunker.js';
import { Clock, processClock } from './clock.js';
import { newRepoConfig, parseRepoConfig, RepoConfig } from './config.js';
import { corrupt, KeepError } from './errors.js';
import { Id, storageHash, toHex } from './ids.js';
import { KeyFile, parseKeyFile } from './keys/keyfile.js';
import { STALE_SESSION_RECORD_MS } from './margins.js';
import { PACK_TARGET_SIZE } from './pack/format.js';
import { BlobSpan, PackHandles, readBlobRun, readStoredAt, readTrailer, StoredBytes } from './pack/reader.js';
import { PackWriter, packPath } from './pack/writer.js';
import { byTime, NewSnapshot, Snapshot } from './snapshot/snapshot.js';
import { atomicWrite, randomId } from './fsutil.js';

/**
 * Repository directory layout (the server's --data DIR, or an embedded KEEP_REPO):
 *
 *   config.json              plaintext config (config.ts)
 *   keys/<id>.json           wrapped master keys (keys/keyfile.ts)
 *   packs/<xx>/<id>.pack     pack files (pack/format.ts)
 *   snapshots/<id>.json      snapshot records, the durable copy (snapshot/snapshot.ts)
 *   tmp/                     packs being written; never indexed
 *   index.mdb                LMDB: blobs, per-source copies, packs, snapshots (a cache of snapshots/)
 *
 * Write order (each step durable before the next): pack bytes -> fsync ->
 * rename into packs/ -> index; snapshot file -> fsync -> LMDB. A crash between
 * steps leaves bytes nobody points at (garbage for prune), never a pointer to
 * missing bytes. The LMDB file can be rebuilt from packs/ and snapshots/.
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

const INDEX_FILE = 'index.mdb';
/** The blob table (blob-index.ts layout). Older tables are migrated into it on open. */
const BLOBS_DB = 'blobs-v3';
/**
 * Named tables the index may hold (the engine's and keepd's; lmdb-js opens 12
 * by default, which the per-source copies table went past). Not stored in the
 * file: any value opens any index.
 */
const MAX_TABLES = 32;
/** 'blobs' held msgpack records, 'blobs-v2' the 66-byte binary ones. */
const OLD_BLOB_TABLES = ['blobs', 'blobs-v2'];
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
  private readonly env: RootDatabase;
  private readonly blobs: BlobIndex;
  /** per-source copies of blobs (copy-index.ts) */
  private readonly copies: CopyIndex;
  /** the owner tag of each source (source-tags.ts) */
  readonly sourceTags: SourceTags;
  /** whose bytes of each blob a reader sees (copy-index.ts) */
  readonly views: BlobViews;
  private readonly packs: Database<PackRecord, string>;
  private readonly snaps: Database<Snapshot, string>;
  private readonly meta: Database<unknown, string>;
  private readonly sessionsDb: Database<SessionRecord, string>;
  private readonly handles = new PackHandles();

  private constructor(
    readonly dir: string,
    readonly config: RepoConfig,
    opts: RepositoryOptions,
  ) {
    this.clock = opts.clock ?? processClock();
    this.env = open({ path: path.join(dir, INDEX_FILE), noSubdir: true, compression: false, maxDbs: MAX_TABLES });
    this.blobs = new BlobIndex(this.env, BLOBS_DB);
    this.copies = new CopyIndex(this.env);
    this.sourceTags = new SourceTags(this.env);
    this.views = new BlobViews(this.blobs, this.copies, this.sourceTags);
    this.packs = this.env.openDB({ name: 'packs' });
    this.snaps = this.env.openDB({ name: 'snapshots' });
    this.meta = this.env.openDB({ name: 'meta' });
    this.sessionsDb = this.env.openDB({ name: 'sessions' });
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
    const repo = new Repository(dir, config, opts);
    // A lost or fresh index is rebuilt from the packs and snapshot files.
    if (repo.meta.get('built') !== true) await repo.rebuildIndex();
    else {
      await repo.migrateOldBlobTables();
      await repo.reconcileSnapshots();
    }
    return repo;
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
  }

  /**
   * A named LMDB database in the repository's index for state that belongs to
   * the server (tokens, sessions, dedup scope); core never reads it.
   */
  database<V = unknown, K extends string | Buffer = string>(name: string, opts: { binaryKeys?: boolean; dupSort?: boolean } = {}): Database<V, K> {
    if ([...OLD_BLOB_TABLES, BLOBS_DB, COPIES_DB, SOURCE_TAGS_DB, 'packs', 'snapshots', 'meta', 'sessions'].includes(name)) throw new KeepError('INVALID_ARGUMENT', `database name ${name} is the engine's own`);
    return this.env.openDB({ name, ...(opts.binaryKeys ? { keyEncoding: 'binary' } : {}), ...(opts.dupSort ? { dupSort: true } : {}) }) as Database<V, K>;
  }

  /** Run `fn` in one LMDB write transaction (durable when the promise resolves). */
  transaction<T>(fn: () => T): Promise<T> {
    return this.env.transaction(fn);
  }

  // ---- keys --------------------------------------------------------------

  keyFiles(): KeyFile[] {
    return fs
      .readdirSync(this.keysDir)
      .filter((n) => n.endsWith('.json'))
      .sort()
      .map((n) => parseKeyFile(fs.readFileSync(path.join(this.keysDir, n), 'utf8')));
  }

  addKeyFile(f: KeyFile): void {
    if (!/^[0-9a-f]{16}$/.test(f.id)) throw new KeepError('INVALID_ARGUMENT', 'bad key file id');
    atomicWrite(path.join(this.keysDir, `${f.id}.json`), JSON.stringify(f, null, 2) + '\n');
  }

  removeKeyFile(id: string): void {
    const files = this.keyFiles();
    if (!files.some((f) => f.id === id)) throw new KeepError('NOT_FOUND', `no key ${id}`);
    if (files.length === 1) throw new KeepError('INVALID_ARGUMENT', 'refusing to remove the last key: the repository would become unreadable');
    fs.rmSync(path.join(this.keysDir, `${id}.json`));
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

  /** Make a snapshot visible, only if every blob reachable from its root is stored (in `view`: see closure). */
  async commitSnapshot(s: NewSnapshot, view?: BlobView): Promise<Snapshot> {
    return this.publish({ id: randomId(), ...s }, view);
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
    const files = fs.readdirSync(this.snapsDir).filter((n) => n.endsWith('.json'));
    if (files.length === this.snaps.getCount()) return;
    const onDisk = new Set(files.map((n) => n.slice(0, -5)));
    await this.env.transaction(() => {
      for (const n of onDisk) if (!this.snaps.get(n)) this.snaps.put(n, JSON.parse(fs.readFileSync(path.join(this.snapsDir, `${n}.json`), 'utf8')));
      for (const { key } of this.snaps.getRange()) if (!onDisk.has(key)) this.snaps.remove(key);
    });
  }

  // ---- maintenance ----------------------------------------------------------

  private packFiles(): { id: string; file: string }[] {
    const out: { id: string; file: string }[] = [];
    for (const sub of fs.readdirSync(this.packsDir)) {
      const d = path.join(this.packsDir, sub);
      if (!fs.statSync(d).isDirectory()) continue;
      for (const n of fs.readdirSync(d)) if (n.endsWith('.pack')) out.push({ id: n.slice(0, -5), file: path.join(d, n) });
    }
    return out;
  }

  /** Rebuild the whole LMDB index from pack trailers and snapshot files. */
  async rebuildIndex(): Promise<{ packs: number; blobs: number; damaged_packs: string[] }> {
    const damaged: string[] = [];
    let blobs = 0;
    // The packs do not say which source stored a blob: the copies table survives a rebuild, and the bytes it
    // points at are not made any blob's primary (a source's copy must not become what every other source reads).
    const copyAt = new Set<string>();
    for (const c of this.copies.all()) copyAt.add(`${c.record.pack}:${c.record.offset}`);
    await this.env.transaction(() => {
      this.blobs.clearSync();
      this.packs.clearSync();
      this.snaps.clearSync();
    });
    const now = this.clock.now();
    const packs = this.packFiles();
    for (const p of packs) {
      let entries;
      try {
        entries = await readTrailer(p.file);
      } catch (e) {
        damaged.push(`${p.id}: ${(e as Error).message}`);
        continue;
      }
      const size = fs.statSync(p.file).size;
      await this.env.transaction(() => {
        this.packs.put(p.id, { size, blobs: entries.length, created: now });
        for (const e of entries) {
          if (this.blobs.has(e.id) || copyAt.has(`${p.id}:${e.offset}`)) continue;
          this.blobs.put(e.id, { pack: p.id, offset: e.offset, length: e.length, hash: e.hash, type: e.type, seen: now });
          blobs++;
        }
      });
    }
    await this.dropStrayCopies();
    await this.reconcileSnapshots();
    await this.meta.put('built', true);
    return { packs: packs.length - damaged.length, blobs, damaged_packs: damaged };
  }

  /** Copies whose pack is gone or too short for them (after a rebuild): their owner stores the blob again. */
  private async dropStrayCopies(): Promise<void> {
    const stray = [...this.copies.all()].filter((c) => {
      const p = this.packs.get(c.record.pack);
      return !p || c.record.offset + c.record.length > p.size;
    });
    await this.env.transaction(() => stray.forEach((c) => this.copies.remove(c.id, c.tag)));
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
    const done = p.finish();
    for (const e of done.entries) {
      const hex = toHex(e.id);
      this.pending.delete(hex);
      this.indexing.add(hex);
    }
    const before = this.indexed;
    this.indexed = before.then(async () => {
      try {
        this.indexedElsewhere.push(...(await this.repo.indexPack(done.id, done.size, done.entries, this.scope)));
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
