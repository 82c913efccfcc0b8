import fs from 'node:fs';

/*
 * File-system steps of a restore that must never follow a symlink planted in
 * the target. Used on the main thread and in the restore workers, so this
 * module imports nothing but node:fs (a worker loads it at start-up).
 *
 * - The last component of every path is created with O_EXCL (files),
 *   mkdir, symlink or link: each fails with EEXIST rather than follow or
 *   reuse something already there. Only then is the old entry unlinked (never
 *   followed: unlink removes a symlink itself) and the creation retried. So a
 *   path in a new directory costs one call, and one in an existing tree three.
 * - Directories: an existing entry is reused only if lstat says it is a real
 *   directory; anything else (a symlink to elsewhere, a file) is removed and
 *   a directory made. Every path below the target therefore runs through
 *   directories this restore made or checked.
 * - Modes, owners and times of files are set through the open descriptor
 *   (fchown, fchmod, futimes), never by path.
 */

/** Metadata applied to a restored entry. */
export interface EntryMeta {
  mode: number;
  uid: number;
  gid: number;
  /** mtime in seconds (fractional) */
  mtime: number;
}

const CREATE_FLAGS = fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW;
const DIR_FLAGS = fs.constants.O_RDONLY | fs.constants.O_DIRECTORY | fs.constants.O_NOFOLLOW;

const code = (e: unknown) => (e as NodeJS.ErrnoException).code;

/** Run `create`; if the name is taken, unlink what is there (never following it) and run it again. */
function replacing<T>(p: Buffer, create: () => T): T {
  try {
    return create();
  } catch (e) {
    if (code(e) !== 'EEXIST') throw e;
  }
  fs.unlinkSync(p);
  return create();
}

/** Create a new regular file (mode 0600 until the entry's own is applied), replacing any entry named `p`. */
export function createFile(p: Buffer): number {
  return replacing(p, () => fs.openSync(p, CREATE_FLAGS, 0o600));
}

/**
 * createFile on the thread pool: in a busy file system the create is the slow
 * step of a small file (an ext4 inode search can take ~0.5 ms), and several
 * run at once while the caller decrypts.
 */
export function createFileAsync(p: Buffer): Promise<number> {
  const open = () => new Promise<number>((resolve, reject) => fs.open(p, CREATE_FLAGS, 0o600, (e, fd) => (e ? reject(e) : resolve(fd))));
  return open().catch((e: unknown) => {
    if (code(e) !== 'EEXIST') throw e;
    fs.unlinkSync(p);
    return open();
  });
}

/** An owner (or a symlink's times) the file system refuses is not an error: the entry keeps ours. */
function bestEffort(set: () => void): void {
  try {
    set();
  } catch {
    // keep ours
  }
}

export function writeAll(fd: number, data: Uint8Array, position: number): void {
  let done = 0;
  while (done < data.length) done += fs.writeSync(fd, data, done, data.length - done, position + done);
}

/**
 * Owner (when `chown`: root restores owners; an owner the file system refuses
 * is not an error), mode (after chown, which may clear set-id bits), then
 * times (last: writes would change them).
 */
export function setMetaFd(fd: number, m: EntryMeta, chown: boolean): void {
  if (chown) bestEffort(() => fs.fchownSync(fd, m.uid, m.gid));
  fs.fchmodSync(fd, m.mode);
  fs.futimesSync(fd, m.mtime, m.mtime);
}

/**
 * Make directory `p`, or reuse a real directory already there. Returns true
 * when it was made here. `mode` applies only to a new directory.
 */
export function ensureDir(p: Buffer, mode: number): boolean {
  try {
    fs.mkdirSync(p, mode);
    return true;
  } catch (e) {
    if (code(e) !== 'EEXIST') throw e;
  }
  if (fs.lstatSync(p).isDirectory()) return false;
  fs.unlinkSync(p);
  fs.mkdirSync(p, mode);
  return true;
}

export function createSymlink(target: Buffer, p: Buffer, m: EntryMeta, chown: boolean): void {
  replacing(p, () => fs.symlinkSync(target, p));
  if (chown) bestEffort(() => fs.lchownSync(p, m.uid, m.gid));
  bestEffort(() => fs.lutimesSync(p, m.mtime, m.mtime)); // not every file system sets symlink times
}

/** A hard link `p` to the already restored `existing`. */
export function createLink(existing: Buffer, p: Buffer): void {
  replacing(p, () => fs.linkSync(existing, p));
}

/**
 * A directory's metadata, through a descriptor opened without following a
 * symlink. A directory whose mode denies us reading (no r bit, not root) cannot
 * be opened: lstat proves it is still a directory, then the path is used.
 */
export function setDirMeta(p: Buffer, m: EntryMeta, chown: boolean): void {
  let fd: number;
  try {
    fd = fs.openSync(p, DIR_FLAGS);
  } catch (e) {
    if (code(e) !== 'EACCES' || !fs.lstatSync(p).isDirectory()) throw e;
    if (chown) bestEffort(() => fs.lchownSync(p, m.uid, m.gid));
    fs.chmodSync(p, m.mode);
    fs.utimesSync(p, m.mtime, m.mtime);
    return;
  }
  try {
    setMetaFd(fd, m, chown);
  } finally {
    fs.closeSync(fd);
  }
}
