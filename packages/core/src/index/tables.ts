import { Database, open, RootDatabase } from 'lmdb';
import { BlobIndex } from '../blob-index.js';
import type { PackRecord, SessionRecord } from '../repository.js';
import type { Snapshot } from '../snapshot/snapshot.js';

/** The index: a cache of packs/ and snapshots/, rebuilt from them (rebuild.ts). */
export const INDEX_FILE = 'index.mdb';
/** The blob table (blob-index.ts layout). Older tables are migrated into it on open. */
export const BLOBS_DB = 'blobs-v3';
/** 'blobs' held msgpack records, 'blobs-v2' the 66-byte binary ones. */
export const OLD_BLOB_TABLES = ['blobs', 'blobs-v2'];
/** Tables the engine owns; server code may not open these names. */
export const ENGINE_TABLES = [...OLD_BLOB_TABLES, BLOBS_DB, 'packs', 'snapshots', 'meta', 'sessions'];

/** The engine's tables in one open index file. */
export interface IndexTables {
  env: RootDatabase;
  blobs: BlobIndex;
  packs: Database<PackRecord, string>;
  snaps: Database<Snapshot, string>;
  /** 'built': a rebuild finished; 'gcEpoch' */
  meta: Database<unknown, string>;
  sessions: Database<SessionRecord, string>;
}

export function openIndexTables(file: string): IndexTables {
  const env = open({ path: file, noSubdir: true, compression: false });
  return {
    env,
    blobs: new BlobIndex(env, BLOBS_DB),
    packs: env.openDB({ name: 'packs' }),
    snaps: env.openDB({ name: 'snapshots' }),
    meta: env.openDB({ name: 'meta' }),
    sessions: env.openDB({ name: 'sessions' }),
  };
}
