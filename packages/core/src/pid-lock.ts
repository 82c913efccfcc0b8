import fs from 'node:fs';
import path from 'node:path';
import { KeepError } from './errors.js';
import { REPO_FILES } from './formats.js';

/**
 * A lock file holding the pid (and the operation) of the process that holds
 * it. It appears with its content already in it (written to a private file,
 * then linked: link is atomic), so an empty or unreadable lock is the
 * leftover of a crash, never a holder still starting. A lock whose pid is
 * not alive is stale and taken over (kill -9, power loss). Residual limit:
 * two processes that find the same stale lock at the same instant may both
 * take it over; each re-reads the lock after replacing it, which narrows
 * that to the few microseconds between one's rename and the other's read.
 */
export interface PidLock {
  release(): void;
}

/** Is process `pid` running (ours or another user's)? Not for pid <= 0, which would name a process group. */
export function processAlive(pid: number): boolean {
  // process.kill(0, 0) would probe our own process group: a pid must be positive.
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'; // alive, another user's
  }
}

function holder(file: string): { pid: number; what: string } | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  const [pid, ...what] = text.trim().split(' ');
  return { pid: Number(pid), what: what.join(' ') };
}

/**
 * Take `file` for `what` (e.g. "prune"), or throw LOCKED with `busy(holder)`
 * when a live process holds it. A process may not take a lock twice.
 */
export function acquirePidLock(file: string, what: string, busy: (h: { pid: number; what: string }) => string): PidLock {
  const mine = `${file}.${process.pid}.tmp`;
  const content = `${process.pid} ${what}`;
  fs.writeFileSync(mine, content);
  try {
    try {
      fs.linkSync(mine, file);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const h = holder(file);
      if (h && processAlive(h.pid)) throw new KeepError('LOCKED', busy(h));
      // Stale: replace it atomically (a reader sees the old or the new holder, never an empty file).
      fs.renameSync(mine, file);
      if (holder(file)?.pid !== process.pid) throw new KeepError('LOCKED', busy(holder(file) ?? { pid: 0, what: 'another process' }));
    }
  } finally {
    fs.rmSync(mine, { force: true });
  }
  let released = false;
  return {
    release() {
      if (released) return;
      released = true;
      // Only our own lock: a holder that took over a lock we were wrongly thought dead on keeps it.
      if (holder(file)?.pid === process.pid) fs.rmSync(file, { force: true });
    },
  };
}

export const MAINTENANCE_LOCK = REPO_FILES.maintenanceLock;

/**
 * The one maintenance lock of a repository: prune (sweep, repack, orphan
 * cleanup) and every index rebuild hold it, so none of them ever sees
 * another's half-done work. Backups and restores never take it.
 */
export function acquireMaintenanceLock(dir: string, what: string): PidLock {
  return acquirePidLock(path.join(dir, MAINTENANCE_LOCK), what, (h) => `${h.what || 'maintenance'} is running (pid ${h.pid}) on ${dir}; try again when it ends (backups are not affected)`);
}
