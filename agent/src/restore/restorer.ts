import fs from 'node:fs';
import path from 'node:path';
import { fileChunks, Id, KeepError, openBlob, SealPool, TreeEntry, TreeNode } from '@keep/core';
import type { Unlocked } from '../repo/open.js';
import { TreeReader } from './tree-reader.js';

/** Files restored at once. */
const FILE_CONCURRENCY = 32;
/** Chunks of one file fetched ahead of the one being written. */
const CHUNK_PREFETCH = 4;

export interface RestoreOptions {
  target: string;
  /** restore only these paths (as shown by `keep ls`) and what is below them */
  include?: string[];
  onProgress?: (p: { files: number; bytes: number; current?: string }) => void;
  onWarning?: (message: string) => void;
}

export interface RestoreStats {
  files: number;
  dirs: number;
  symlinks: number;
  hardlinks: number;
  bytes: number;
  chunks: number;
  duration_s: number;
}

const SEP = Buffer.from('/');
/** Files up to this size in one chunk take the synchronous path. */
const SMALL_FILE = 1024 * 1024;

function removeIfPresent(p: Buffer): void {
  try {
    fs.unlinkSync(p);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT') throw e;
  }
}

/**
 * Writes a snapshot's tree into a target directory: contents (every chunk
 * decrypted on the worker pool and checked against its id), modes, owners
 * where permitted, mtimes, symlinks and hardlinks. Files are written several
 * at a time; directory times are set last, deepest first, since writing into
 * a directory changes its mtime.
 */
export class Restorer {
  readonly stats: RestoreStats = { files: 0, dirs: 0, symlinks: 0, hardlinks: 0, bytes: 0, chunks: 0, duration_s: 0 };
  private readonly trees: TreeReader;
  private readonly running = new Set<Promise<void>>();
  private failure: Error | undefined;
  private readonly dirTimes: { p: Buffer; e: TreeEntry }[] = [];
  /** first restored path of each hardlinked inode, and when its content is done */
  private readonly linked = new Map<string, { path: Buffer; done: Promise<void> }>();
  private readonly includes: Buffer[];
  private readonly isRoot = process.getuid?.() === 0;

  constructor(
    private readonly repo: Unlocked,
    private readonly pool: SealPool,
    private readonly opts: RestoreOptions,
  ) {
    this.trees = new TreeReader(repo);
    this.includes = (opts.include ?? []).map((i) => Buffer.from(i.replace(/\/+$/, '').replace(/^(?!\/)/, '/')));
  }

  async run(root: Id, started: number, now: () => number): Promise<RestoreStats> {
    const target = Buffer.from(path.resolve(this.opts.target));
    await fs.promises.mkdir(target, { recursive: true });
    await this.dir(root, target, Buffer.alloc(0));
    while (this.running.size) await Promise.all(this.running);
    if (this.failure) throw this.failure;
    for (const { p, e } of this.dirTimes.reverse()) await this.setMeta(p, e);
    this.stats.duration_s = (now() - started) / 1000;
    return this.stats;
  }

  /** 'all' (inside an included path), 'walk' (an ancestor of one) or 'skip'. */
  private selected(rel: Buffer): 'all' | 'walk' | 'skip' {
    if (this.includes.length === 0) return 'all';
    for (const inc of this.includes) {
      if (rel.equals(inc) || (rel.length > inc.length && rel.subarray(0, inc.length).equals(inc) && rel[inc.length] === 0x2f)) return 'all';
    }
    for (const inc of this.includes) if (inc.length > rel.length && inc.subarray(0, rel.length).equals(rel) && inc[rel.length] === 0x2f) return 'walk';
    return 'skip';
  }

  private async dir(id: Id, dest: Buffer, rel: Buffer, all = false): Promise<void> {
    const node = await this.trees.read(id);
    for (const e of node.entries) {
      if (this.failure) throw this.failure;
      if (e.name.includes(0x2f) || e.name.equals(Buffer.from('..')) || e.name.equals(Buffer.from('.')) || e.name.length === 0) {
        throw new KeepError('CORRUPT', `snapshot holds an unsafe name ${JSON.stringify(e.name.toString())}; refusing to restore outside the target`);
      }
      const r = Buffer.concat([rel, SEP, e.name]);
      const sel = all ? 'all' : this.selected(r);
      if (sel === 'skip') continue;
      const p = Buffer.concat([dest, SEP, e.name]);
      if (e.type === 'dir') {
        await fs.promises.mkdir(p, { recursive: true });
        this.stats.dirs++;
        await this.dir(TreeReader.subtree(node, e), p, r, sel === 'all');
        if (sel === 'all') this.dirTimes.push({ p, e });
      } else if (sel === 'walk') {
        continue;
      } else if (e.type === 'symlink') {
        removeIfPresent(p);
        await fs.promises.symlink(e.target!, p);
        this.stats.symlinks++;
        await this.setMeta(p, e);
      } else {
        await this.schedule(() => this.file(node, e, p));
      }
    }
  }

  private async schedule(task: () => Promise<void>): Promise<void> {
    while (this.running.size >= FILE_CONCURRENCY) await Promise.race(this.running);
    if (this.failure) throw this.failure;
    const t: Promise<void> = task()
      .catch((err: Error) => {
        this.failure ??= err;
      })
      .finally(() => this.running.delete(t));
    this.running.add(t);
  }

  private async file(node: TreeNode, e: TreeEntry, p: Buffer): Promise<void> {
    if (e.nlink > 1) {
      const key = `${e.dev}:${e.ino}`;
      const first = this.linked.get(key);
      if (first) {
        await first.done;
        removeIfPresent(p);
        await fs.promises.link(first.path, p);
        this.stats.hardlinks++;
        return;
      }
      let resolve!: () => void;
      this.linked.set(key, { path: p, done: new Promise((r) => (resolve = r)) });
      try {
        await this.writeFile(node, e, p);
      } finally {
        resolve();
      }
      return;
    }
    await this.writeFile(node, e, p);
  }

  private async writeFile(node: TreeNode, e: TreeEntry, p: Buffer): Promise<void> {
    const ids = fileChunks(node, e);
    // Unlink first: opening an existing path would follow a symlink planted there.
    removeIfPresent(p);
    if (ids.length <= 1 && e.size <= SMALL_FILE) return this.writeSmallFile(ids, e, p);
    const fh = await fs.promises.open(p, 'wx', 0o600);
    try {
      // Fetch (and decrypt) a few chunks ahead; write strictly in order.
      const fetches: Promise<Buffer>[] = [];
      const fetch = (i: number) => {
        const p = this.repo.conn.getBlob(ids[i]).then((stored) => this.pool.open(ids[i], stored, true));
        // Awaited in order below; a chunk ahead failing first (or after an earlier failure) must not be an unhandled rejection, which kills the process.
        p.catch(() => undefined);
        return p;
      };
      for (let i = 0; i < Math.min(CHUNK_PREFETCH, ids.length); i++) fetches.push(fetch(i));
      let pos = 0;
      for (let i = 0; i < ids.length; i++) {
        if (i + CHUNK_PREFETCH < ids.length) fetches.push(fetch(i + CHUNK_PREFETCH));
        const data = await fetches[i];
        delete fetches[i];
        let done = 0;
        while (done < data.length) done += (await fh.write(data, done, data.length - done, pos + done)).bytesWritten;
        pos += data.length;
        this.stats.chunks++;
      }
      if (pos !== e.size) throw new KeepError('CORRUPT', `${p.toString()}: restored ${pos} bytes, the snapshot says ${e.size}`);
      this.stats.bytes += pos;
      this.stats.files++;
    } finally {
      await fh.close();
    }
    await this.setMeta(p, e);
    this.opts.onProgress?.({ files: this.stats.files, bytes: this.stats.bytes, current: p.toString() });
  }

  /**
   * Files of at most one small chunk (most files in most trees): decrypted on
   * this thread and written with synchronous calls. A worker round trip and
   * five thread-pool round trips per file cost more than the work itself.
   */
  private async writeSmallFile(ids: Id[], e: TreeEntry, p: Buffer): Promise<void> {
    const data = ids.length ? openBlob(this.repo.keys, ids[0], await this.repo.conn.getBlob(ids[0])).plaintext : Buffer.alloc(0);
    if (data.length !== e.size) throw new KeepError('CORRUPT', `${p.toString()}: restored ${data.length} bytes, the snapshot says ${e.size}`);
    fs.writeFileSync(p, data, { flag: 'wx', mode: 0o600 });
    this.stats.chunks += ids.length;
    this.stats.bytes += data.length;
    this.stats.files++;
    await this.setMeta(p, e);
    this.opts.onProgress?.({ files: this.stats.files, bytes: this.stats.bytes, current: p.toString() });
  }

  /** Owner (when root), mode, then times (last: chown and chmod would not touch mtime, but writes would). */
  private async setMeta(p: Buffer, e: TreeEntry): Promise<void> {
    const mtime = e.mtime[0] + e.mtime[1] / 1e9;
    if (this.isRoot) {
      try {
        fs.lchownSync(p, e.uid, e.gid);
      } catch {
        // an owner the file system refuses: keep ours
      }
    }
    if (e.type === 'symlink') {
      try {
        fs.lutimesSync(p, mtime, mtime);
      } catch {
        // not every file system sets symlink times
      }
      return;
    }
    fs.chmodSync(p, e.mode);
    fs.utimesSync(p, mtime, mtime);
  }
}

export type { TreeNode };
