import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { REPO_FILES } from '../formats.js';
import { atomicWrite } from '../fsutil.js';
import type { Clock } from '../clock.js';
import { corrupt, KeepError } from '../errors.js';
import { toHex } from '../ids.js';
import type { PackEntry } from '../pack/format.js';
import { type BlobSpan, parseTrailer, type PackRead, proveBlobRun, type StoredBytes } from '../pack/reader.js';
import type { SealedPack } from '../pack/writer.js';
import { PACK_DELETE_DELAY_MS, STORE_LEASE_MS } from '../margins.js';
import { WriterLease } from './lease.js';
import { isStoreError, listAll, type ObjectStore } from './object-store.js';
import { repoKeys } from './repo-keys.js';
import type { StoreOpStats } from './metered-store.js';
import type { KeyFileTexts, RepoStorage, StoredPack, WriterHold } from './repo-storage.js';

const PACK_KEY = /^packs\/[0-9a-f]{2}\/([0-9a-f]+)\.pack$/;
const SNAPSHOT_KEY = /^snapshots\/([0-9a-f]+)\.json$/;
const KEY_FILE_KEY = /^keys\/([^/]+)\.json$/;
const INDEX_SEGMENT_KEY = /^index\/([^/]+)\.seg$/;

/**
 * Key files in the bucket, read once when the repository opens (load) and
 * kept: only the lease holder writes them, through this object.
 */
class ObjectKeyFiles implements KeyFileTexts {
  private texts = new Map<string, string>();

  constructor(
    private readonly store: ObjectStore,
    /** throws when this keepd may not write any more */
    private readonly writable: () => void,
  ) {}

  async load(): Promise<void> {
    const texts = new Map<string, string>();
    for await (const o of listAll(this.store, repoKeys.keysPrefix)) {
      const id = KEY_FILE_KEY.exec(o.key)?.[1];
      if (id) texts.set(id, (await this.store.get(o.key)).bytes.toString('utf8'));
    }
    this.texts = texts;
  }

  list(): { id: string; text: string }[] {
    return [...this.texts].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([id, text]) => ({ id, text }));
  }

  async write(id: string, text: string): Promise<void> {
    this.writable();
    await this.store.put(repoKeys.keyFile(id), Buffer.from(text));
    this.texts.set(id, text);
  }

  async remove(id: string): Promise<void> {
    this.writable();
    await this.store.deleteMany([repoKeys.keyFile(id)]);
    this.texts.delete(id);
  }
}

/**
 * A repository in a bucket prefix (formats.ts STORE_OBJECTS; keys from
 * repo-keys.ts): a pack is built in the local tmp/ and published with one
 * create-only put, read with ranged gets; snapshot records and key files are
 * small objects. Writes stop once the writer lease is lost.
 */
export class ObjectRepoStorage implements RepoStorage {
  readonly description: string;
  /** a ranged GET in flight, in any process, still finds a pack a repack emptied */
  readonly deleteDelayMs = PACK_DELETE_DELAY_MS;
  readonly keyFiles: ObjectKeyFiles;
  private renewTimer: NodeJS.Timeout | undefined;
  /** why this keepd may not write any more (its lease was lost) */
  private lost: Error | undefined;

  constructor(
    readonly store: ObjectStore,
    readonly tmpDir: string,
    /** the requests the store made (metered-store.ts), where it was metered */
    private readonly stats: () => StoreOpStats[] = () => [],
  ) {
    this.description = store.description;
    this.keyFiles = new ObjectKeyFiles(store, () => this.writable());
  }

  /** The bucket's config.json, create-only (a prefix holds one repository), then the data directory's copy. */
  async writeConfig(text: string): Promise<void> {
    await this.putOnce(repoKeys.config, Buffer.from(text), `${this.description} already holds a repository`);
    atomicWrite(path.join(path.dirname(this.tmpDir), REPO_FILES.config), text);
  }

  /** The data directory's config.json must be the bucket's (a data directory pointed at another prefix is refused); then the key files are read. */
  async attach(configText: string): Promise<void> {
    const there = await this.readConfig();
    if (there !== configText) throw new KeepError('CORRUPT', `${this.description} holds another repository than the data directory's config.json names`);
    await this.keyFiles.load();
  }

  /** The bucket's config.json (NOT_A_REPOSITORY when it holds none). */
  async readConfig(): Promise<string> {
    try {
      return (await this.store.get(repoKeys.config)).bytes.toString('utf8');
    } catch (e) {
      if (isStoreError(e, 'not-found')) throw new KeepError('NOT_A_REPOSITORY', `${this.description} holds no repository (no config.json)`);
      throw e;
    }
  }

  /** A create-only put (If-None-Match: *); ALREADY_EXISTS saying `exists` when the key is taken. */
  private async putOnce(key: string, bytes: Buffer, exists: string): Promise<void> {
    try {
      await this.store.put(key, bytes, { ifNoneMatch: '*' });
    } catch (e) {
      if (isStoreError(e, 'precondition-failed')) throw new KeepError('ALREADY_EXISTS', exists);
      throw e;
    }
  }

  private writable(): void {
    if (this.lost) throw this.lost;
  }

  async publishPack(p: SealedPack): Promise<void> {
    this.writable();
    const bytes = fs.readFileSync(p.tmpFile);
    try {
      await this.store.put(repoKeys.pack(p.id), bytes, { ifNoneMatch: '*' });
    } finally {
      fs.rmSync(p.tmpFile, { force: true });
    }
  }

  /** Ranged reads of one pack; a short answer is a truncated pack. */
  private reader(packId: string, what: string): PackRead {
    return async (offset, length) => {
      let got;
      try {
        got = await this.store.get(repoKeys.pack(packId), { range: { offset, length } });
      } catch (e) {
        if (isStoreError(e, 'not-found')) throw corrupt(`${what}: its pack ${packId} is missing`);
        throw e;
      }
      if (got.bytes.length < length) throw corrupt(`${what}: pack ends after ${offset + got.bytes.length} bytes, expected ${offset + length} (truncated)`);
      return got.bytes;
    };
  }

  readBlobs(packId: string, blobs: BlobSpan[]): Promise<(StoredBytes | Error)[]> {
    if (blobs.length === 0) return Promise.resolve([]);
    return proveBlobRun(packId, blobs, this.reader(packId, `blob ${toHex(blobs[0].id)}`));
  }

  async readTrailer(packId: string): Promise<PackEntry[]> {
    const info = await this.store.head(repoKeys.pack(packId));
    if (!info) throw corrupt(`pack ${packId} is missing`);
    return parseTrailer(info.size, this.reader(packId, `pack ${packId}`), `pack ${packId}`);
  }

  async listPacks(): Promise<StoredPack[]> {
    const out: StoredPack[] = [];
    for await (const o of listAll(this.store, repoKeys.packsPrefix)) {
      const id = PACK_KEY.exec(o.key)?.[1];
      if (id) out.push({ id, size: o.size, modified: o.modified ?? Number.POSITIVE_INFINITY });
    }
    return out;
  }

  async deletePacks(ids: string[]): Promise<void> {
    this.writable();
    await this.store.deleteMany(ids.map(repoKeys.pack));
  }

  /** A list of the bucket per figure would cost requests: the index's pack sizes count. */
  packBytes(): undefined {
    return undefined;
  }

  async putIndexSegment(name: string, bytes: Buffer): Promise<void> {
    this.writable();
    await this.putOnce(repoKeys.indexSegment(name), bytes, `index segment ${name} exists`);
  }

  async listIndexSegments(): Promise<string[]> {
    const out: string[] = [];
    for await (const o of listAll(this.store, repoKeys.indexPrefix)) {
      const name = INDEX_SEGMENT_KEY.exec(o.key)?.[1];
      if (name) out.push(name);
    }
    return out.sort();
  }

  async readIndexSegment(name: string): Promise<Buffer> {
    try {
      return (await this.store.get(repoKeys.indexSegment(name))).bytes;
    } catch (e) {
      if (isStoreError(e, 'not-found')) throw corrupt(`index segment ${name} is missing`);
      throw e;
    }
  }

  async deleteIndexSegments(names: string[]): Promise<void> {
    this.writable();
    if (names.length) await this.store.deleteMany(names.map(repoKeys.indexSegment));
  }

  async snapshotIds(): Promise<string[]> {
    const out: string[] = [];
    for await (const o of listAll(this.store, repoKeys.snapshotsPrefix)) {
      const id = SNAPSHOT_KEY.exec(o.key)?.[1];
      if (id) out.push(id);
    }
    return out;
  }

  async hasSnapshot(id: string): Promise<boolean> {
    return (await this.store.head(repoKeys.snapshot(id))) !== undefined;
  }

  async readSnapshot(id: string): Promise<string> {
    return (await this.store.get(repoKeys.snapshot(id))).bytes.toString('utf8');
  }

  async writeSnapshot(id: string, text: string): Promise<void> {
    this.writable();
    await this.putOnce(repoKeys.snapshot(id), Buffer.from(text), `snapshot ${id} exists`);
  }

  async deleteSnapshots(ids: string[]): Promise<void> {
    this.writable();
    await this.store.deleteMany(ids.map(repoKeys.snapshot));
  }

  /**
   * Take the writer lease (KeepError LOCKED when another keepd holds it) and
   * renew it every third of its TTL; a lost renewal stops every later write.
   * The holder is this host and data directory (its site): a keepd restarted
   * after a crash (the directory's own lock says no other runs) takes its
   * lease back at once instead of waiting for it to expire. A lease held by
   * another process of the same site (keepd serve, while `keepd prune` runs
   * beside it on the same index) is shared: it is checked as often as it
   * would be renewed, taken over once it is given back, and a holder of
   * another site appearing stops every later write.
   */
  async holdWriter(holder: string, clock: Clock): Promise<WriterHold> {
    const options = { holder: `${holder} on ${os.hostname()}:${path.resolve(path.dirname(this.tmpDir))}`, clock };
    const first = await WriterLease.acquireOrShare(this.store, options);
    let lease = first === 'shared' ? undefined : first;
    const refresh = async () => {
      try {
        if (lease) return await lease.renew();
        const r = await WriterLease.acquireOrShare(this.store, options);
        if (r !== 'shared') lease = r;
      } catch (e) {
        if (e instanceof KeepError && e.code === 'LOCKED') this.lost = e;
        throw e;
      }
    };
    clearInterval(this.renewTimer); // a second hold replaces the first
    const every = Math.max(1000, Math.floor(STORE_LEASE_MS / 3));
    // a transient failure is tried again next round: the lease outlives two misses
    this.renewTimer = setInterval(() => void refresh().catch(() => undefined), every);
    this.renewTimer.unref();
    return {
      renew: refresh,
      release: async () => {
        clearInterval(this.renewTimer);
        this.renewTimer = undefined;
        if (lease && !this.lost) await lease.release();
      },
    };
  }

  requestStats(): StoreOpStats[] {
    return this.stats();
  }

  async close(): Promise<void> {
    clearInterval(this.renewTimer);
    await this.store.close();
  }
}
