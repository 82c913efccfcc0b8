import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** $KEEP_CACHE_DIR, else $XDG_CACHE_HOME/keep, else ~/.cache/keep. */
export function cacheDir(env: NodeJS.ProcessEnv): string {
  if (env.KEEP_CACHE_DIR) return env.KEEP_CACHE_DIR;
  return path.join(env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'keep');
}

/**
 * Write one file of the agent's cache directory (KDF parameters, code caches,
 * unchanged directories): private (0600 in a 0700 directory) and whole (a
 * temporary file renamed over it). Not fsynced: a cache lost in a crash costs
 * time, nothing else. False when it could not be written (a read-only home):
 * never an error, for the same reason.
 */
export function writeCacheFile(file: string, data: string | Uint8Array): boolean {
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    fs.writeFileSync(tmp, data, { mode: 0o600 });
    fs.renameSync(tmp, file);
    return true;
  } catch {
    try {
      fs.rmSync(tmp, { force: true });
    } catch {
      /* never written */
    }
    return false;
  }
}
