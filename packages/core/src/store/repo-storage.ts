import type { Clock } from '../clock.js';
import type { PackEntry } from '../pack/format.js';
import type { BlobSpan, StoredBytes } from '../pack/reader.js';
import type { SealedPack } from '../pack/writer.js';
import type { StoreOpStats } from './metered-store.js';

/** A pack where the storage keeps it, with its size in bytes. */
export interface StoredPack {
  id: string;
  size: number;
  /** when it was written (ms; Infinity when the storage cannot say: prune then never takes it for an old orphan) */
  modified: number;
}

/** Key files as stored, one JSON text per key id (keys/key-store.ts parses them). */
export interface KeyFileTexts {
  /** Every key file, in id order; synchronous: readers ask on every GetConfig. */
  list(): { id: string; text: string }[];
  write(id: string, text: string): Promise<void>;
  remove(id: string): Promise<void>;
}

/** What holding the right to write the storage costs: give it back on stop. */
export interface WriterHold {
  /** Renew now (a timer does it on its own); KeepError LOCKED once the right was lost, and every later write fails so. */
  renew(): Promise<void>;
  release(): Promise<void>;
}

/**
 * Where a repository keeps what is not its LMDB cache: packs, snapshot
 * records, key files (formats.ts names them). The engine reaches them only
 * through this interface; two implementations: local-repo-storage.ts (the
 * data directory, as it always was) and object-repo-storage.ts (a bucket
 * prefix, store/object-store.ts). index.mdb, state.mdb, tmp/ and the audit
 * log are always local files.
 */
export interface RepoStorage {
  /** For messages (never credentials). */
  readonly description: string;
  /** Where packs are built before publishPack (a local directory either way). */
  readonly tmpDir: string;

  /** Make a sealed pack readable under its id; its temporary file is gone afterwards. Create-only. */
  publishPack(p: SealedPack): Promise<void>;
  /** Blobs lying close together in one pack, read at once and proven (pack/reader.ts proveBlobRun). */
  readBlobs(packId: string, blobs: BlobSpan[]): Promise<(StoredBytes | Error)[]>;
  /** A pack's trailer; CORRUPT when it is missing, truncated or damaged. */
  readTrailer(packId: string): Promise<PackEntry[]>;
  listPacks(): Promise<StoredPack[]>;
  deletePacks(ids: string[]): Promise<void>;
  /** How long a pack dropped from the index stays before deletePacks (margins.ts PACK_DELETE_DELAY_MS; 0: at once). */
  readonly deleteDelayMs: number;
  /** Bytes in packs where that is cheap to learn synchronously (files); undefined: the index's pack sizes count. */
  packBytes(): number | undefined;

  /** Store index segment `name` (index/segment-format.ts), durable when it resolves; create-only: a second one of that name is refused. */
  putIndexSegment(name: string, bytes: Buffer): Promise<void>;
  /** The names of every stored index segment, sorted. */
  listIndexSegments(): Promise<string[]>;
  /** Segment `name`'s bytes; CORRUPT when it is missing. */
  readIndexSegment(name: string): Promise<Buffer>;
  /** Delete segments (a missing one is no error): prune's compaction, after their replacement is stored. */
  deleteIndexSegments(names: string[]): Promise<void>;

  snapshotIds(): Promise<string[]>;
  hasSnapshot(id: string): Promise<boolean>;
  readSnapshot(id: string): Promise<string>;
  /** Durable when it resolves; a record is never replaced. */
  writeSnapshot(id: string, text: string): Promise<void>;
  deleteSnapshots(ids: string[]): Promise<void>;

  readonly keyFiles: KeyFileTexts;

  /** Write a new repository's config.json (create-only where the storage can refuse a second one). */
  writeConfig(text: string): Promise<void>;
  /**
   * Check that the storage holds the repository whose config.json the data
   * directory has (`configText`) and read what is kept in memory; called
   * once, on open.
   */
  attach(configText: string): Promise<void>;

  /**
   * The right to write: keepd serve holds it while it runs. A local
   * directory has its own lock (server data-lock.ts): a no-op there; a
   * bucket prefix has the writer lease (store/lease.ts).
   */
  holdWriter(holder: string, clock: Clock): Promise<WriterHold>;
  /** Requests made to an object store, per operation (keepd's /metrics); none for a directory. */
  requestStats(): StoreOpStats[];
  close(): Promise<void>;
}
