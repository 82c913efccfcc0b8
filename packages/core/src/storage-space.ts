import fs from 'node:fs';
import { KeepError } from './errors.js';
import { PACK_SPACE_FLOOR_BYTES, SPACE_RECHECK_BYTES } from './margins.js';

/**
 * The repository's disk filling up: free space, the one error users see for
 * it, and LMDB's way of reporting it (a failed commit whose cause travels in a
 * separate promise) turned into that error.
 */

export interface SpaceInfo {
  /** bytes an unprivileged writer may still use */
  free: number;
  total: number;
}

export function spaceOf(dir: string): SpaceInfo {
  const s = fs.statfsSync(dir);
  return { free: s.bavail * s.bsize, total: s.blocks * s.bsize };
}

/** The RESOURCE_EXHAUSTED error for a full repository disk; `why` says which limit, when it is not ENOSPC itself. */
export function diskFull(dir: string, why = ''): KeepError {
  let free = '?';
  try {
    free = String(spaceOf(dir).free);
  } catch {
    /* the message still says what happened */
  }
  return new KeepError('RESOURCE_EXHAUSTED', `repository disk full: ${free} bytes free in ${dir}${why}; free space (forget and prune old snapshots, or a larger disk) and run the backup again`);
}

/** ENOSPC or EDQUOT, as Node reports them (code string) or as LMDB does (errno number). */
export function isNoSpace(e: unknown): boolean {
  const code = (e as { code?: unknown } | undefined)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT' || code === 28 || code === 122;
}

/**
 * LMDB reports a write cut short by the disk filling (pwrite wrote less than
 * asked) as EIO, not ENOSPC: on a disk with less than the pack writers' floor
 * left, that is what it was.
 */
function isShortWriteOnFullDisk(e: unknown, dir: string): boolean {
  const code = (e as { code?: unknown } | undefined)?.code;
  if (code !== 'EIO' && code !== 5) return false;
  try {
    return spaceOf(dir).free < PACK_SPACE_FLOOR_BYTES;
  } catch {
    return false;
  }
}

/** LMDB's "Commit failed": the cause is in `commitError`, a promise that is rejected whether or not anyone waits. */
function commitCause(e: unknown): Promise<unknown> | undefined {
  const p = (e as { commitError?: unknown } | undefined)?.commitError;
  return p instanceof Promise ? p : undefined;
}

/**
 * A repository write failure as the error to report: ENOSPC (a pack or any
 * file) and LMDB commits that failed for lack of space become diskFull;
 * other LMDB commit failures say so with their cause. Anything else is
 * returned as it is. Waiting on LMDB's cause also handles its rejection.
 */
export async function storageFailure(e: unknown, dir: string): Promise<unknown> {
  if (e instanceof KeepError) return e;
  if (isNoSpace(e) || isShortWriteOnFullDisk(e, dir)) return diskFull(dir);
  const cause = commitCause(e);
  if (!cause) return e;
  const c = await cause.then(
    () => undefined,
    (x: unknown) => x,
  );
  if (isNoSpace(c) || isShortWriteOnFullDisk(c, dir)) return diskFull(dir);
  return new KeepError('INTERNAL', `repository index write failed: ${(c as Error | undefined)?.message ?? 'unknown cause'}`);
}

/**
 * An LMDB write failure nobody waited for (a commit's cause, or a write whose
 * caller did not wait). The write that failed reports itself to its caller;
 * such a rejection must not end keepd or a backup with a crash.
 */
export function isLmdbWriteFailure(reason: unknown): boolean {
  if (!(reason instanceof Error)) return false;
  if (commitCause(reason)) return true;
  return typeof (reason as { code?: unknown }).code === 'number' && /[\\/]lmdb[\\/]/.test(reason.stack ?? '');
}

/**
 * Install once per process: LMDB write failures that reach no handler are
 * passed to `report` (a log line) instead of ending the process; every other
 * unhandled rejection still ends it, as Node does by default.
 */
let surviving = false;

export function surviveLmdbWriteFailures(report: (reason: Error) => void): void {
  if (surviving) return;
  surviving = true;
  process.on('unhandledRejection', (reason) => {
    if (isLmdbWriteFailure(reason)) {
      commitCause(reason)?.catch(() => undefined);
      report(reason as Error);
      return;
    }
    throw reason;
  });
}

/**
 * Free space as pack writers see it: a blob is refused when writing it would
 * leave less than PACK_SPACE_FLOOR_BYTES. statfs is asked again once the
 * bytes written since the last answer use up what it allowed, and at least
 * every SPACE_RECHECK_BYTES (other processes write to the same disk).
 */
const budgets = new Map<string, number>();

export function claimSpace(dir: string, bytes: number): void {
  let budget = budgets.get(dir) ?? 0;
  if (budget < bytes) {
    const { free } = spaceOf(dir);
    budget = Math.min(free - PACK_SPACE_FLOOR_BYTES, SPACE_RECHECK_BYTES + bytes);
    if (budget < bytes) {
      budgets.set(dir, 0);
      throw diskFull(dir, ` (a ${bytes}-byte blob would leave less than the ${PACK_SPACE_FLOOR_BYTES} bytes kept for the index)`);
    }
  }
  budgets.set(dir, budget - bytes);
}
