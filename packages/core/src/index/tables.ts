import { Database, open, RootDatabase } from 'lmdb';
import { BlobIndex } from '../blob-index.js';
import { COPIES_DB, CopyIndex } from '../copy-index.js';
import type { PackRecord, SessionRecord } from '../repository.js';
import type { Snapshot } from '../snapshot/snapshot.js';

/** The index: a cache of packs/ and snapshots/, rebuilt from them (rebuild.ts). */
export const INDEX_FILE = 'index.mdb';
/** The blob table (blob-index.ts layout). Older tables are migrated into it on open. */
export const BLOBS_DB = 'blobs-v3';
/** 'blobs' held msgpack records, 'blobs-v2' the 66-byte binary ones. */
export const OLD_BLOB_TABLES = ['blobs', 'blobs-v2'];
/** Tables the engine owns; server code may not open these names. */
export const ENGINE_TABLES = [...OLD_BLOB_TABLES, BLOBS_DB, COPIES_DB, 'packs', 'snapshots', 'meta', 'sessions'];
/**
 * Named tables an index may hold (the engine's and keepd's; lmdb-js opens 12
 * by default, which the per-source copies table went past). Not stored in the
 * file: any value opens any index.
 */
const MAX_TABLES = 32;

/** The engine's tables in one open index file. */
export interface IndexTables {
  env: RootDatabase;
  blobs: BlobIndex;
  /** per-source copies (copy-index.ts) */
  copies: CopyIndex;
  packs: Database<PackRecord, string>;
  snaps: Database<Snapshot, string>;
  /** 'built': a rebuild finished; 'gcEpoch' */
  meta: Database<unknown, string>;
  sessions: Database<SessionRecord, string>;
}

export function openIndexTables(file: string): IndexTables {
  const env = open({ path: file, noSubdir: true, compression: false, maxDbs: MAX_TABLES });
  return {
    env,
    blobs: new BlobIndex(env, BLOBS_DB),
    copies: new CopyIndex(env),
    packs: env.openDB({ name: 'packs' }),
    snaps: env.openDB({ name: 'snapshots' }),
    meta: env.openDB({ name: 'meta' }),
    sessions: env.openDB({ name: 'sessions' }),
  };
}
