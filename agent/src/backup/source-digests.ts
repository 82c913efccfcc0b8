import crypto from 'node:crypto';
import fs from 'node:fs';
import type { UnchangedSubtree } from './archiver.js';
import { inodeKey, lstatEntry } from './metadata.js';

/**
 * The digest of a directory's answers (backup/unchanged.ts), and the source
 * walk that computes them as it goes while scrypt runs.
 *
 * The bytes hashed for a directory, one buffer per directory (DirDigest):
 * its names joined by '/' (names hold neither '/' nor NUL) and NUL; then per
 * entry its name, NUL, the 72-byte lstat answer (mode, size, uid, gid, ino,
 * dev, nlink, mtime ns, ctime ns as little-endian u64) and NUL, followed by
 * the subdirectory's digest or the symlink's target and NUL. Names, paths and
 * targets are bytes, held as latin1 strings. The cache file's MACs cover these
 * digests: the layout must not change.
 */

/** Answers noted at most per walk (beyond it nothing is digested). */
export const LIMIT = 50_000;

/** A directory's digest, and what lies below it as the archiver counts it. */
export interface Digested extends UnchangedSubtree {
  digest: Buffer;
}

export const S_IFMT = 0o170000;
export const S_IFREG = 0o100000;
export const S_IFDIR = 0o040000;
export const S_IFLNK = 0o120000;

/** The bytes of one directory's digest, written into a reused buffer and hashed once. */
export class DirDigest {
  private buf = Buffer.allocUnsafe(4096);
  private len = 0;

  /** Start a directory: its names as the readdir answer ('/'-joined). */
  begin(names: string): void {
    this.len = 0;
    this.text(names);
  }

  /** An entry's name and its lstat answer (72 bytes, as bytes or a latin1 string). */
  entry(name: string, answer: Uint8Array | string): void {
    this.text(name);
    if (typeof answer === 'string') this.text(answer);
    else {
      this.room(73);
      this.buf.set(answer, this.len);
      this.buf[this.len + 72] = 0;
      this.len += 73;
    }
  }

  /** A subdirectory's digest, after its entry. */
  sub(digest: Uint8Array): void {
    this.room(digest.length);
    this.buf.set(digest, this.len);
    this.len += digest.length;
  }

  /** A symlink's target, after its entry. */
  target(t: string): void {
    this.text(t);
  }

  digest(): Buffer {
    return crypto.hash('sha256', this.buf.subarray(0, this.len), 'buffer');
  }

  /** `s` as latin1 bytes, then NUL. */
  private text(s: string): void {
    this.room(s.length + 1);
    this.len += this.buf.write(s, this.len, 'latin1');
    this.buf[this.len++] = 0;
  }

  private room(n: number): void {
    if (this.len + n <= this.buf.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(2 * this.buf.length, this.len + n));
    this.buf.copy(bigger, 0, 0, this.len);
    this.buf = bigger;
  }
}

/** A file into its directory's counts: its size, or its inode's when it has more names. */
export function addFile(r: Digested, size: number, nlink: number, dev: number, ino: number): void {
  r.files++;
  if (nlink > 1) r.hardlinks.push({ inode: inodeKey(dev, ino), size });
  else r.bytes += size;
}

/** A subdirectory into its directory: its digest into the bytes, what lies below it into the counts. */
export function addSubdir(w: DirDigest, r: Digested, sub: Digested): void {
  w.sub(sub.digest);
  r.dirs += 1 + sub.dirs;
  r.files += sub.files;
  r.bytes += sub.bytes;
  r.hardlinks.push(...sub.hardlinks);
}

const NON_ASCII = /[^\x00-\x7f]/;

/**
 * Asks the source what the archiver will ask about `paths` (the directories
 * leading to them, then everything below, depth first) and digests each
 * directory as its walk ends: the digests digestDir (unchanged.ts) computes
 * from a RecordingView's answers, without keeping the answers. Yields to the
 * event loop now and then; stops at the first error (the archiver reports it)
 * or when told. A directory with an answer the archiver would not store as
 * answered (nothing there, a special file) or not walked whole has no digest.
 */
export class SourceDigests {
  /** directory path (latin1) -> digest, for each directory walked whole */
  readonly digests = new Map<string, Digested>();
  private asked = 0;
  private full = false;
  private entries = 0;
  private readonly fields = new BigUint64Array(9);
  private readonly fieldBytes = new Uint8Array(this.fields.buffer);
  /** one per depth: a directory's bytes are written while its subdirectories are walked */
  private readonly writers: DirDigest[] = [];

  constructor(private readonly stopped: () => boolean) {}

  /** Past LIMIT answers nothing is kept (no digest for anything). */
  get complete(): boolean {
    return !this.full;
  }

  /** Drop the digests (memory for a backup that will not use them). */
  clear(): void {
    this.digests.clear();
  }

  async walk(paths: string[]): Promise<void> {
    const ancestors = new Set<string>(); // asked once however many paths lead through them
    try {
      for (const p of paths) {
        if (this.stopped()) return;
        let key = '';
        let ascii = true;
        let st: fs.BigIntStats | undefined;
        for (const part of p.split('/').filter(Boolean)) {
          const name = Buffer.from(part).toString('latin1');
          key += `/${name}`;
          ascii &&= !NON_ASCII.test(name);
          if (!ancestors.has(key) && !this.note()) return;
          ancestors.add(key);
          st = this.lstat(key, ascii);
          if (!st) break;
        }
        if (st?.isSymbolicLink()) {
          if (!this.note()) return;
          fs.readlinkSync(at(key, ascii));
        } else if (st?.isDirectory()) await this.dir(key, ascii, 0);
      }
    } catch {
      // unreadable: the archiver's walk reports it
    }
  }

  /** Walk directory `key` and digest it; undefined when it has no digest. */
  private async dir(key: string, ascii: boolean, depth: number): Promise<Digested | undefined> {
    if (!this.note()) return undefined;
    const names = fs.readdirSync(at(key, ascii), 'latin1').sort(); // code units of latin1 are bytes: Buffer.compare's order
    const w = (this.writers[depth] ??= new DirDigest());
    w.begin(names.join('/'));
    const r: Digested = { digest: EMPTY, files: 0, dirs: 0, bytes: 0, hardlinks: [] };
    let whole = true;
    for (const name of names) {
      if (++this.entries % 256 === 0) await new Promise((resolve) => setImmediate(resolve));
      if (this.stopped() || this.full || !this.note()) return undefined;
      const childKey = `${key}/${name}`;
      const childAscii = ascii && !NON_ASCII.test(name);
      const st = this.lstat(childKey, childAscii);
      if (!st) {
        whole = false; // vanished: the archiver would warn
        continue;
      }
      w.entry(name, this.fieldBytes);
      const kind = Number(st.mode) & S_IFMT;
      if (kind === S_IFREG) addFile(r, Number(st.size), Number(st.nlink), Number(st.dev), Number(st.ino));
      else if (kind === S_IFDIR) {
        const sub = await this.dir(childKey, childAscii, depth + 1);
        if (sub) addSubdir(w, r, sub);
        else whole = false;
      } else if (kind === S_IFLNK) {
        if (!this.note()) return undefined;
        w.target(fs.readlinkSync(at(childKey, childAscii), 'latin1'));
      } else whole = false; // a special file: the archiver skips it, with a warning
    }
    if (!whole || this.full) return undefined;
    r.digest = w.digest();
    this.digests.set(key, r);
    return r;
  }

  /** lstat of `key`, its answer left in fieldBytes; undefined when nothing is there. */
  private lstat(key: string, ascii: boolean): fs.BigIntStats | undefined {
    return lstatAnswer(at(key, ascii), this.fields);
  }

  /** Count one answer; false (and nothing kept) once there are more than LIMIT. */
  private note(): boolean {
    if (this.full) return false;
    if (++this.asked > LIMIT) {
      this.full = true;
      this.digests.clear();
      return false;
    }
    return true;
  }
}

const EMPTY = Buffer.alloc(0);

/**
 * lstat with nanosecond times; the fields the archiver stores left in `fields`
 * (72 bytes: decimal strings of them cost twice the lstat). Undefined when
 * nothing is there; throws on other errors.
 */
export function lstatAnswer(path: string | Buffer, fields: BigUint64Array): fs.BigIntStats | undefined {
  const st = lstatEntry(path);
  if (!st) return undefined;
  fields[0] = st.mode;
  fields[1] = st.size;
  fields[2] = st.uid;
  fields[3] = st.gid;
  fields[4] = st.ino;
  fields[5] = st.dev;
  fields[6] = st.nlink;
  fields[7] = st.mtimeNs;
  fields[8] = st.ctimeNs;
  return st;
}

/** How to reach `key` (a path's bytes as latin1): the string itself when ASCII (its UTF-8 is those bytes). */
function at(key: string, ascii: boolean): string | Buffer {
  return ascii ? key : Buffer.from(key, 'latin1');
}
