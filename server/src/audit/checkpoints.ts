import path from 'node:path';
import { Database, open } from 'lmdb';
import { Repository, STATE_FILE, STATE_TABLES } from '@keep/core';

/**
 * The audit log's checkpoints in state.mdb, written in the same LMDB write
 * transaction as the append they follow (that transaction is also the lock
 * that serialises appends across keepd and its shell commands):
 * 'head' is the newest record, so a truncated log is caught against it;
 * 'pruned' is where retention cut the log, so a segment removed by anyone
 * else is caught.
 */
export interface AuditCheckpoint {
  seq: number;
  hash: string;
}

export interface AuditCheckpoints {
  head?: AuditCheckpoint;
  /** retention removed every record up to `seq`; `hash` is that record's (the next one's prev) */
  pruned?: AuditCheckpoint;
}

export function checkpointTable(repo: Repository) {
  return repo.database<AuditCheckpoint>(STATE_TABLES.audit);
}

/** A table of DATA/state.mdb read without opening the repository (verify and list run beside a serving keepd); undefined when there is none. */
export function readStateTable<V, R>(data: string, table: string, read: (db: Database<V, string>) => R): R | undefined {
  let env;
  try {
    env = open({ path: path.join(data, STATE_FILE), noSubdir: true, readOnly: true, compression: false });
  } catch {
    return undefined;
  }
  try {
    return read(env.openDB<V, string>({ name: table }));
  } catch {
    return undefined; // no such table yet: nothing was ever written to it
  } finally {
    void env.close();
  }
}

/** The checkpoints of DATA's own log. */
export function readCheckpoints(data: string): AuditCheckpoints {
  return readStateTable<AuditCheckpoint, AuditCheckpoints>(data, STATE_TABLES.audit, (db) => ({ head: db.get('head'), pruned: db.get('pruned') })) ?? {};
}
