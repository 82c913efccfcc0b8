import path from 'node:path';
import { open } from 'lmdb';
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

/** The checkpoints read without opening the repository (verify and list run beside a serving keepd). */
export function readCheckpoints(data: string): AuditCheckpoints {
  let env;
  try {
    env = open({ path: path.join(data, STATE_FILE), noSubdir: true, readOnly: true, compression: false });
  } catch {
    return {};
  }
  try {
    const db = env.openDB<AuditCheckpoint, string>({ name: STATE_TABLES.audit });
    return { head: db.get('head'), pruned: db.get('pruned') };
  } catch {
    return {}; // no audit table yet: nothing was ever appended
  } finally {
    void env.close();
  }
}
