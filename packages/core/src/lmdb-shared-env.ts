import fs from 'node:fs';
import path from 'node:path';
import { open, RootDatabase, RootDatabaseOptions } from 'lmdb';

/**
 * One lmdb-js environment per file per process, shared by every opener of the
 * file and closed with the last one.
 *
 * Two handles of one file in one process deadlock: each has its own writer
 * thread, coordinated with its own synchronous writes only. While one
 * handle's writer thread holds LMDB's write lock, waiting for the main thread
 * to run a `transaction()` callback, a synchronous write on the other handle
 * (`openDB`, `transactionSync`, `putSync`) blocks the main thread on that lock
 * for ever. The resident agent opens the repository once per run, and runs
 * overlap (CI: a files run and a new source's first run both hung in their
 * commit); test/lmdb-one-env.test.ts.
 */
const envs = new Map<string, { env: RootDatabase; users: number }>();

/** A share of a file's environment: `close` gives it back (the last one closes the file). */
export interface SharedEnv {
  env: RootDatabase;
  close(): Promise<void>;
}

export function openSharedEnv(file: string, options: Omit<RootDatabaseOptions, 'path'>): SharedEnv {
  const key = envKey(file);
  let entry = envs.get(key);
  if (!entry) {
    entry = { env: open({ path: file, ...options }), users: 0 };
    envs.set(key, entry);
  }
  entry.users++;
  const held = entry;
  let closed = false;
  return {
    env: held.env,
    async close() {
      if (closed) return;
      closed = true;
      if (--held.users > 0) return;
      if (envs.get(key) === held) envs.delete(key);
      await held.env.close();
    },
  };
}

/**
 * The file is being replaced (an index rebuild swaps a new one in): later
 * openers get the new file; those holding the old one keep it until they close.
 */
export function detachSharedEnv(file: string): void {
  envs.delete(envKey(file));
}

/** The file's path with its directory's symlinks resolved, so two spellings of one repository share one handle. */
function envKey(file: string): string {
  const dir = path.dirname(path.resolve(file));
  let real = dir;
  try {
    real = fs.realpathSync(dir);
  } catch {
    // not there yet: lmdb creates the file (and fails on a missing directory itself)
  }
  return path.join(real, path.basename(file));
}
