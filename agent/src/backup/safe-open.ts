import fs from 'node:fs';
import { KeepError } from '@keep/core';

/*
 * Opening what the walk found, without trusting the file system between the
 * lstat and the open. An attacker who can write inside a source directory can
 * swap an entry after it was lstat'ed (a file for a symlink to a root-only
 * file, a file for a FIFO, a directory for a symlink to another one):
 *
 * - every open is O_NOFOLLOW (a symlink swapped in fails ELOOP) and O_NONBLOCK
 *   (a FIFO swapped in opens at once instead of waiting for a writer);
 * - the descriptor's fstat must show the lstat's device, inode and type, or the
 *   entry is skipped: what is read is exactly the object whose metadata is stored;
 * - directories are read and their entries reached through the directory's own
 *   descriptor (/proc/self/fd/N/NAME, Linux's openat for a path-only API): a
 *   parent renamed or swapped for a symlink after it was opened changes nothing;
 * - a path of PATH_MAX bytes or more is skipped: the walk could read it (each
 *   access path is short), but a restore, which creates entries by path, could not.
 *
 * Every failure is an Unreadable: the archiver skips the entry with a warning
 * and the backup goes on.
 */

/** An entry that cannot be backed up as found: skipped, with `reason` in the warning. */
export class Unreadable extends Error {
  constructor(readonly reason: string) {
    super(reason);
    this.name = 'Unreadable';
  }
}

/** Linux's PATH_MAX, the NUL included: the longest path a restore can create is one byte less. */
export const PATH_MAX = 4096;

/** An entry whose path a restore could not create. */
export function checkPathLength(full: Buffer): void {
  if (full.length >= PATH_MAX) throw new Unreadable(`path of ${full.length} bytes, over PATH_MAX (${PATH_MAX}): a restore could not create it`);
}

const errno = (e: unknown): string | undefined => (e as NodeJS.ErrnoException)?.code;

/** Run a source file system call; its errno errors (EACCES, ELOOP, ENAMETOOLONG...) become Unreadable. */
export function source<T>(call: () => T): T {
  try {
    return call();
  } catch (e) {
    throw asUnreadable(e);
  }
}

/** An errno error as an Unreadable (anything else is not the source's: it passes through). */
export function asUnreadable(e: unknown): unknown {
  if (e instanceof KeepError || e instanceof Unreadable) return e;
  const code = errno(e);
  return code ? new Unreadable(code) : e;
}

const { O_RDONLY, O_NOFOLLOW, O_NONBLOCK, O_DIRECTORY, O_NOCTTY } = fs.constants;
/** O_NOATIME: reading does not touch the files' atimes. Only the owner or root may ask (EPERM otherwise). */
const O_NOATIME = fs.constants.O_NOATIME ?? 0;
const euid = process.geteuid?.() ?? -1;

const S_IFMT = 0o170000n;

/** Open what `at` names now, and prove it is the object `st` described; the descriptor is the caller's to close. */
function openSame(at: Buffer, st: fs.BigIntStats, flags: number): number {
  const noatime = euid === 0 || BigInt(euid) === st.uid ? O_NOATIME : 0;
  const fd = source(() => fs.openSync(at, flags | O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | noatime));
  try {
    const now = source(() => fs.fstatSync(fd, { bigint: true }));
    if ((now.mode & S_IFMT) !== (st.mode & S_IFMT)) throw new Unreadable('replaced by another type of file while being backed up');
    if (now.dev !== st.dev || now.ino !== st.ino) throw new Unreadable('replaced by another file while being backed up');
    return fd;
  } catch (e) {
    fs.closeSync(fd);
    throw e;
  }
}

/** A regular file found by lstat as `st`, opened for reading. */
export function openFile(at: Buffer, st: fs.BigIntStats): number {
  return openSame(at, st, 0);
}

/** Whether /proc/self/fd reaches a directory through its descriptor (Linux with /proc mounted). */
const procFd = (() => {
  try {
    return fs.statSync('/proc/self/fd').isDirectory();
  } catch {
    return false;
  }
})();

/** A directory being walked: how its entries are reached (`at`), and the descriptor that pins it. */
export interface OpenDir {
  at: Buffer;
  fd: number;
}

/**
 * A directory found by lstat as `st` (reached as `at`), opened and pinned.
 * Without /proc the walk goes by path: still checked here, but its entries are
 * reached by their full paths (a path beyond PATH_MAX is then skipped).
 */
export function openDir(at: Buffer, st: fs.BigIntStats): OpenDir {
  const fd = openSame(at, st, O_DIRECTORY);
  return { fd, at: procFd ? Buffer.from(`/proc/self/fd/${fd}`) : at };
}

export function closeDir(d: OpenDir): void {
  fs.closeSync(d.fd);
}
