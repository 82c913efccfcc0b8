import path from 'node:path';
import type { Database, RootDatabase } from 'lmdb';
import { KeepError } from './errors.js';
import { REPO_FILES, STATE_TABLES } from './formats.js';
import { checkLmdbFile } from './index/meta-check.js';
import { openSharedEnv, SharedEnv } from './lmdb-shared-env.js';

/**
 * state.mdb: the server's own state (tokens, source tags, replica
 * registrations, replication state), kept apart from index.mdb so that
 * losing or rebuilding the index loses none of it. Unlike the index it
 * cannot be rebuilt from packs: back it up with the data directory.
 */
export const STATE_FILE = REPO_FILES.state;

/** Named tables state.mdb may hold (lmdb-js's default of 12 is too few once keepd's control plane and audit log keep theirs here). */
const STATE_MAX_TABLES = 64;

/**
 * Tables keepd kept in index.mdb before state.mdb existed. The first open
 * of the state moves them over (an existing repository keeps its tokens)
 * and empties them in the index, so a lost state.mdb never comes back with
 * stale records (a revoked token alive again).
 */
const LEGACY_TABLES = [STATE_TABLES.tokens, STATE_TABLES.sourceTags, STATE_TABLES.replicas, STATE_TABLES.replication];
const MIGRATED = 'migrated-from-index';

/** A named table of `env` if it exists (lmdb-js returns undefined for create: false), without creating it. */
function existing(env: RootDatabase, name: string): Database | undefined {
  return env.openDB({ name, create: false } as unknown as { name: string }) as Database | undefined;
}

export class StateStore {
  readonly env: RootDatabase;

  private constructor(private readonly shared: SharedEnv) {
    this.env = shared.env;
  }

  /** Open (create) DIR/state.mdb; `index`, when given, is the open index whose legacy tables move here once. */
  static open(dir: string, index?: RootDatabase): StateStore {
    const file = path.join(dir, STATE_FILE);
    const st = checkLmdbFile(file);
    if (st.kind === 'damaged') throw new KeepError('CORRUPT', `${file} is damaged (${st.reason}): it holds keepd's tokens and replication state and cannot be rebuilt; restore it from a backup of the data directory`);
    const store = new StateStore(openSharedEnv(file, { noSubdir: true, compression: false, maxDbs: STATE_MAX_TABLES }));
    if (index) store.migrateFrom(index);
    return store;
  }

  /** Whether `index` still holds tables that belong here. */
  static hasLegacyTables(index: RootDatabase): boolean {
    return LEGACY_TABLES.some((name) => existing(index, name)?.getCount());
  }

  private migrateFrom(index: RootDatabase): void {
    const meta = this.env.openDB<boolean, string>({ name: STATE_TABLES.meta });
    if (meta.get(MIGRATED) && !StateStore.hasLegacyTables(index)) return;
    // Synchronous (callers open the store in constructors); one state transaction (LMDB serialises writers across processes): a record already here is newer, never overwritten.
    this.env.transactionSync(() => {
      if (!meta.get(MIGRATED)) {
        for (const name of LEGACY_TABLES) {
          const from = existing(index, name);
          if (!from) continue;
          const to = this.env.openDB({ name });
          for (const { key, value } of from.getRange()) if (to.get(key) === undefined) to.put(key, value);
        }
      }
      meta.put(MIGRATED, true);
    });
    index.transactionSync(() => {
      for (const name of LEGACY_TABLES) existing(index, name)?.clearSync();
    });
  }

  database<V = unknown, K extends string | Buffer = string>(name: string, opts: { binaryKeys?: boolean; dupSort?: boolean } = {}): Database<V, K> {
    if (name === STATE_TABLES.meta) throw new KeepError('INVALID_ARGUMENT', 'database name meta is the state store\'s own');
    return this.env.openDB({ name, ...(opts.binaryKeys ? { keyEncoding: 'binary' } : {}), ...(opts.dupSort ? { dupSort: true } : {}) }) as Database<V, K>;
  }

  /** Give back this share of state.mdb's environment (lmdb-shared-env.ts). */
  close(): Promise<void> {
    return this.shared.close();
  }
}
