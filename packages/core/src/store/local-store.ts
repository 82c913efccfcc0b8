import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { REPO_DIRS } from '../formats.js';
import { fsyncDir } from '../fsutil.js';
import { checkKey, type GetResult, type ListOptions, type ListPage, type ObjectInfo, type ObjectStore, type PutOptions, StoreError } from './object-store.js';

/** Names the store leaves in the directory while it writes; never listed. */
const TMP_SUFFIX = '.tmp';
const DEFAULT_PAGE = 1000;

const errCode = (e: unknown) => (e as NodeJS.ErrnoException).code;

/** ino, mtime and size: a replacement is a new file (tmp + rename), so a new inode and a new tag. */
function etagOf(st: fs.BigIntStats): string {
  return `${st.ino.toString(16)}-${st.mtimeNs.toString(16)}-${st.size.toString(16)}`;
}

/**
 * Objects as files under a directory, at the same paths as the repository
 * layout in formats.ts (key `packs/ab/abcd….pack` is DIR/packs/ab/abcd….pack),
 * written the way the repository always has: DIR/tmp/ -> fsync -> rename (or
 * link, for create-only: it fails atomically when the name exists) -> fsync
 * of the directory. DIR/tmp/ is never listed.
 */
export class LocalDirectoryStore implements ObjectStore {
  readonly capabilities = { conditionalCreate: true, conditionalReplace: true, maxDeleteBatch: 1000, local: true };
  readonly description: string;

  constructor(readonly root: string) {
    this.description = `directory ${root}`;
  }

  private pathOf(key: string): string {
    checkKey(key);
    return path.join(this.root, ...key.split('/'));
  }

  async put(key: string, bytes: Buffer, opts: PutOptions = {}): Promise<{ etag: string }> {
    const dest = this.pathOf(key);
    const tmpDir = path.join(this.root, REPO_DIRS.tmp);
    fs.mkdirSync(tmpDir, { recursive: true });
    fs.mkdirSync(path.dirname(dest), { recursive: true });
    const tmp = path.join(tmpDir, `${crypto.randomBytes(8).toString('hex')}${TMP_SUFFIX}`);
    const fd = fs.openSync(tmp, 'wx', 0o644);
    let etag: string;
    try {
      fs.writeFileSync(fd, bytes);
      fs.fsyncSync(fd);
      etag = etagOf(fs.fstatSync(fd, { bigint: true }));
    } finally {
      fs.closeSync(fd);
    }
    try {
      if (opts.ifNoneMatch === '*') this.linkCreateOnly(tmp, dest, key);
      else if (opts.ifMatch !== undefined) this.compareAndSwap(tmp, dest, key, opts.ifMatch);
      else fs.renameSync(tmp, dest);
    } finally {
      fs.rmSync(tmp, { force: true });
    }
    fsyncDir(path.dirname(dest));
    return { etag };
  }

  private linkCreateOnly(tmp: string, dest: string, key: string): void {
    try {
      fs.linkSync(tmp, dest);
    } catch (e) {
      if (errCode(e) === 'EEXIST') throw new StoreError('precondition-failed', `${key} already exists`);
      throw e;
    }
  }

  /**
   * Replace `dest` only if it is still the version `ifMatch`: move it aside
   * (only one contender's rename finds it), check the moved file's tag, then
   * link the new one in (fails if someone created the key meanwhile).
   */
  private compareAndSwap(tmp: string, dest: string, key: string, ifMatch: string): void {
    const aside = path.join(path.dirname(tmp), `${crypto.randomBytes(8).toString('hex')}${TMP_SUFFIX}`);
    try {
      fs.renameSync(dest, aside);
    } catch (e) {
      if (errCode(e) === 'ENOENT') throw new StoreError('precondition-failed', `${key} does not exist (expected version ${ifMatch})`);
      throw e;
    }
    try {
      if (etagOf(fs.statSync(aside, { bigint: true })) !== ifMatch) {
        try {
          fs.linkSync(aside, dest); // put it back
        } catch (e) {
          if (errCode(e) !== 'EEXIST') throw e;
        }
        throw new StoreError('precondition-failed', `${key} changed (expected version ${ifMatch})`);
      }
      this.linkCreateOnly(tmp, dest, key);
    } finally {
      fs.rmSync(aside, { force: true });
    }
  }

  async get(key: string, opts: { range?: { offset: number; length: number } } = {}): Promise<GetResult> {
    let fd: number;
    try {
      fd = fs.openSync(this.pathOf(key), 'r');
    } catch (e) {
      if (errCode(e) === 'ENOENT') throw new StoreError('not-found', `${key} not found in ${this.description}`);
      throw e;
    }
    try {
      const st = fs.fstatSync(fd, { bigint: true });
      const size = Number(st.size);
      const offset = Math.min(opts.range?.offset ?? 0, size);
      const length = Math.min(opts.range?.length ?? size, size - offset);
      const bytes = Buffer.alloc(length);
      let done = 0;
      while (done < length) {
        const n = fs.readSync(fd, bytes, done, length - done, offset + done);
        if (n === 0) break;
        done += n;
      }
      return { bytes: bytes.subarray(0, done), etag: etagOf(st), size };
    } finally {
      fs.closeSync(fd);
    }
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    try {
      const st = fs.statSync(this.pathOf(key), { bigint: true });
      return st.isFile() ? { key, size: Number(st.size), etag: etagOf(st) } : undefined;
    } catch (e) {
      if (errCode(e) === 'ENOENT' || errCode(e) === 'ENOTDIR') return undefined;
      throw e;
    }
  }

  async list(prefix: string, opts: ListOptions = {}): Promise<ListPage> {
    const limit = opts.limit ?? DEFAULT_PAGE;
    const found: ObjectInfo[] = [];
    const slash = prefix.lastIndexOf('/');
    this.walk(slash < 0 ? '' : prefix.slice(0, slash + 1), prefix, found);
    found.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    const after = opts.cursor === undefined ? found : found.filter((o) => o.key > opts.cursor!);
    const objects = after.slice(0, limit);
    return { objects, cursor: after.length > limit ? objects[objects.length - 1].key : undefined };
  }

  /** Files under the key directory `dir` ('' or 'a/b/') whose keys start with `prefix`. */
  private walk(dir: string, prefix: string, out: ObjectInfo[]): void {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(path.join(this.root, dir), { withFileTypes: true });
    } catch (e) {
      if (errCode(e) === 'ENOENT' || errCode(e) === 'ENOTDIR') return;
      throw e;
    }
    for (const ent of entries) {
      const key = dir + ent.name;
      if (ent.isDirectory()) {
        if (key === REPO_DIRS.tmp) continue;
        const sub = key + '/';
        if (sub.startsWith(prefix) || prefix.startsWith(sub)) this.walk(sub, prefix, out);
      } else if (ent.isFile() && key.startsWith(prefix) && !ent.name.endsWith(TMP_SUFFIX)) {
        const info = this.statInfo(key);
        if (info) out.push(info);
      }
    }
  }

  private statInfo(key: string): ObjectInfo | undefined {
    try {
      const st = fs.statSync(path.join(this.root, key), { bigint: true });
      return { key, size: Number(st.size), etag: etagOf(st) };
    } catch (e) {
      if (errCode(e) === 'ENOENT') return undefined; // deleted while listing
      throw e;
    }
  }

  async deleteMany(keys: string[]): Promise<void> {
    const dirs = new Set<string>();
    for (const key of keys) {
      const p = this.pathOf(key);
      try {
        fs.unlinkSync(p);
        dirs.add(path.dirname(p));
      } catch (e) {
        if (errCode(e) !== 'ENOENT') throw e;
      }
    }
    for (const d of dirs) fsyncDir(d);
  }

  async close(): Promise<void> {}
}
