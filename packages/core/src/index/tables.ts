import type { Database, RootDatabase } from 'lmdb';
import { BlobIndex } from '../blob-index.js';
import { COPIES_DB, CopyIndex } from '../copy-index.js';
import { INDEX_TABLES, OLD_BLOB_TABLES, REPO_FILES } from '../formats.js';
import { openSharedEnv } from '../lmdb-shared-env.js';
import type { Snapshot } from '../snapshot/snapshot.js';

export { OLD_BLOB_TABLES };

/** The index: a cache of packs/ and snapshots/, rebuilt from them (rebuild.ts). */
export const INDEX_FILE = REPO_FILES.index;
/** The blob table (blob-index.ts layout). Older tables are migrated into it on open. */
export const BLOBS_DB = INDEX_TABLES.blobs;
/** Tables the engine owns; server code may not open these names. */
export const ENGINE_TABLES: string[] = [...OLD_BLOB_TABLES, BLOBS_DB, COPIES_DB, INDEX_TABLES.packs, INDEX_TABLES.snapshots, INDEX_TABLES.meta, INDEX_TABLES.sessions];
/**
 * Named tables an index may hold (the engine's and keepd's; lmdb-js opens 12
 * by default, which the per-source copies table went past). Not stored in the
 * file: any value opens any index.
 */
const MAX_TABLES = 32;

/** A pack the index knows (the `packs` table). */
export interface PackRecord {
  size: number;
  blobs: number;
  created: number;
}

/** An open writer session as the index records it (keepd's, or an embedded backup's): the `sessions` table. */
export interface SessionRecord {
  source: string;
  host: string;
  /** the snapshot this session builds on: protected from forget while the session lives */
  parent?: string;
  tokenId?: string;
  started: number;
  leaseUntil: number;
}

/** The engine's tables in one open index file. */
export interface IndexTables {
  env: RootDatabase;
  /** give back this share of the file's environment (lmdb-shared-env.ts): never env.close() */
  close(): Promise<void>;
  blobs: BlobIndex;
  /** per-source copies (copy-index.ts) */
  copies: CopyIndex;
  packs: Database<PackRecord, string>;
  snaps: Database<Snapshot, string>;
  /** 'built': a rebuild finished; 'gcEpoch' */
  meta: Database<unknown, string>;
  sessions: Database<SessionRecord, string>;
}

/** The index file's tables, on the process's one environment of that file (lmdb-shared-env.ts). */
export function openIndexTables(file: string): IndexTables {
  const { env, close } = openSharedEnv(file, { noSubdir: true, compression: false, maxDbs: MAX_TABLES });
  return {
    env,
    close,
    blobs: new BlobIndex(env, BLOBS_DB),
    copies: new CopyIndex(env),
    packs: env.openDB({ name: INDEX_TABLES.packs }),
    snaps: env.openDB({ name: INDEX_TABLES.snapshots }),
    meta: env.openDB({ name: INDEX_TABLES.meta }),
    sessions: env.openDB({ name: INDEX_TABLES.sessions }),
  };
}
