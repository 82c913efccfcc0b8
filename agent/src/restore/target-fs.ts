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

/**
 * The process's umask, from /proc (process.umask() reads it by setting it
 * twice, racing the creates of other threads); undefined where unknown.
 */
export function readUmask(): number | undefined {
  try {
    const m = /^Umask:\s*([0-7]+)$/m.exec(fs.readFileSync('/proc/self/status', 'latin1'));
    return m ? parseInt(m[1], 8) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The entry's mode when open(2) gives a new file exactly that (permission
 * bits only, none of them cleared by the umask): created with it, the file
 * needs no fchmod (setMetaFd). Otherwise undefined: created 0600, and
 * setMetaFd applies the mode. Either way nobody but the owner gets an access
 * the finished file denies.
 */
export function exactCreateMode(mode: number, umask: number | undefined): number | undefined {
  const own = mode & 0o7777;
  return umask !== undefined && own <= 0o777 && (own & umask) === 0 ? own : undefined;
}

/** Create a new regular file with `mode` (exactCreateMode; 0600 without one), replacing any entry named `p`. */
export function createFile(p: Buffer, mode = 0o600): number {
  return replacing(p, () => fs.openSync(p, CREATE_FLAGS, mode));
}

/**
 * createFile on the thread pool: in a busy file system the create is the slow
 * step of a small file (an ext4 inode search can take ~0.5 ms), and several
 * run at once while the caller decrypts.
 */
export function createFileAsync(p: Buffer, mode = 0o600): Promise<number> {
  const open = () => new Promise<number>((resolve, reject) => fs.open(p, CREATE_FLAGS, mode, (e, fd) => (e ? reject(e) : resolve(fd))));
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

/** The unit of holes: a file system allocates blocks of this size (4 KiB on ext4, xfs, btrfs, tmpfs). */
const HOLE_BLOCK = 4096;
const ZERO_BLOCK = Buffer.alloc(HOLE_BLOCK);

/**
 * writeAll into a new file, leaving its all-zero blocks unwritten: holes, as a
 * sparse file had them (its chunks hold the zeros; the size comes from
 * ftruncate at the end, see finishSparse). Blocks are aligned to the file's
 * offsets; non-zero runs are written in one call each. Returns whether the
 * last byte was written (then the file has its size without finishSparse).
 */
export function writeSparse(fd: number, data: Uint8Array, position: number): boolean {
  const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  let run = 0; // start of the pending non-zero run
  let o = 0;
  // first block up to the next block boundary of the file, then whole blocks
  let next = Math.min(buf.length, HOLE_BLOCK - (position % HOLE_BLOCK));
  while (o < buf.length) {
    const end = next;
    const zero = end - o === HOLE_BLOCK && buf[o] === 0 && ZERO_BLOCK.compare(buf, o, end) === 0; // (no view per block)
    if (zero) {
      if (run < o) writeAll(fd, buf.subarray(run, o), position + run);
      run = end;
    }
    o = end;
    next = Math.min(buf.length, o + HOLE_BLOCK);
  }
  if (run >= buf.length) return false;
  writeAll(fd, buf.subarray(run), position + run);
  return true;
}

/** A file written by writeSparse gets its full size (a hole at the end is not written either: needed only then). */
export function finishSparse(fd: number, size: number): void {
  fs.ftruncateSync(fd, size);
}

/** Where a file is written until it is complete: hidden, next to its final name, unique per restore and file. */
const bytes = (p: Uint8Array) => Buffer.from(p.buffer, p.byteOffset, p.byteLength);

export function partialName(p: Uint8Array, file: number): Buffer {
  const b = bytes(p);
  const slash = b.lastIndexOf(0x2f);
  return Buffer.concat([b.subarray(0, slash + 1), Buffer.from(`.keep-partial-${process.pid}-${file}`)]);
}

/** Give a complete file its name (replacing what is there: rename never follows a symlink at `p`). */
export function publish(partial: Buffer, p: Uint8Array): void {
  fs.renameSync(partial, bytes(p));
}

/** Remove a file this restore created and could not complete (best effort: the restore reports the first error). */
export function discard(p: Uint8Array): void {
  try {
    fs.unlinkSync(bytes(p));
  } catch {
    // gone already, or unremovable: the error reported names the file
  }
}

/**
 * Owner (when `chown`: root restores owners; an owner the file system refuses
 * is not an error), mode (after chown, which may clear set-id bits), then
 * times (last: writes would change them). `exactMode`: the file was created
 * with the entry's mode (exactCreateMode), which needs no fchmod then.
 */
export function setMetaFd(fd: number, m: EntryMeta, chown: boolean, exactMode?: number): void {
  if (chown) bestEffort(() => fs.fchownSync(fd, m.uid, m.gid));
  if (exactMode === undefined) fs.fchmodSync(fd, m.mode);
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

/** lstat without following, or undefined when nothing is there. */
export function lstatIfAny(p: Buffer): fs.BigIntStats | undefined {
  try {
    return fs.lstatSync(p, { bigint: true });
  } catch (e) {
    if (code(e) === 'ENOENT') return undefined;
    throw e;
  }
}

/**
 * Metadata of a file already in the target whose content matches the
 * snapshot (--overwrite always / if-changed update every file's metadata):
 * through a descriptor opened without following a symlink, proved a
 * regular file.
 */
export function setExistingFileMeta(p: Buffer, m: EntryMeta, chown: boolean): void {
  const fd = fs.openSync(p, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
  try {
    if (!fs.fstatSync(fd).isFile()) throw Object.assign(new Error(`${p.toString()}: not a regular file`), { code: 'EINVAL' });
    setMetaFd(fd, m, chown);
  } finally {
    fs.closeSync(fd);
  }
}

/** Whether two paths name the same inode (neither followed). */
export function sameFile(a: Buffer, b: Buffer): boolean {
  const x = lstatIfAny(a);
  const y = lstatIfAny(b);
  return !!x && !!y && x.dev === y.dev && x.ino === y.ino;
}
