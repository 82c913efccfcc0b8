import fs from 'node:fs';
import path from 'node:path';
import { fileChunks, Id, KeepError, TreeEntry, TreeNode } from '@keep/core';
import type { Unlocked } from '../repo/open.js';
import type { RestoreChoice, RestoreFilter } from '../selection/restore-filter.js';
import { namedError } from './named-error.js';
import { createLink, createSymlink, EntryMeta, ensureDir, setDirMeta } from './target-fs.js';
import { mark } from '../startup/timing.js';
import { TreeReader } from '../tree/tree-reader.js';
import { RestorePool, restoreWorkerCount } from './worker-pool.js';

/** Files up to this size in one chunk are fetched whole and written by a worker in one go. */
const SMALL_FILE = 1024 * 1024;
/**
 * Small files requested and not yet written: bytes and count. The walker
 * waits beyond either, so memory does not grow with the tree, while enough
 * is asked at once for keepd to answer in long, coalesced pack reads.
 */
const SMALL_BYTES_AHEAD = 4 * 1024 * 1024;
const SMALL_FILES_AHEAD = 2048;
/** Large files written at once (each on one worker, its chunks in order). */
const LARGE_FILES = 2;
/**
 * Large files found by the walker and waiting for a slot: the walker goes on
 * to the small files after them meanwhile, so both kinds share the network.
 */
const LARGE_WAITING = 64;
/**
 * Chunks of one large file between request and write: as many as fit in
 * LARGE_AHEAD_BYTES at the file's average chunk size, at least 2, at most
 * CHUNK_WINDOW. A count alone let a file of max-size chunks (4 MiB, or more
 * with a repository's own chunker sizes) hold 8 of them per file.
 */
const CHUNK_WINDOW = 8;
export const LARGE_AHEAD_BYTES = 4 * 1024 * 1024;

export function chunkWindow(size: number, chunks: number): number {
  const avg = Math.max(1, Math.ceil(size / Math.max(1, chunks)));
  return Math.max(2, Math.min(CHUNK_WINDOW, Math.floor(LARGE_AHEAD_BYTES / avg)));
}

export interface RestoreOptions {
  target: string;
  /** --include / --exclude (selection/restore-filter.ts); everything without one */
  filter?: RestoreFilter;
  onProgress?: (p: { files: number; bytes: number; current?: string }) => void;
  onWarning?: (message: string) => void;
  /** workers started earlier (while scrypt ran), keyless; run() unlocks and closes them */
  pool?: RestorePool;
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
const DOT = Buffer.from('.');
const DOTDOT = Buffer.from('..');
const noop = () => undefined;
const EVERYTHING: RestoreChoice = { selected: true, descend: true };

const metaOf = (e: TreeEntry): EntryMeta => ({ mode: e.mode, uid: e.uid, gid: e.gid, mtime: e.mtime[0] + e.mtime[1] / 1e9 });

/**
 * Writes a snapshot's tree into a target directory: contents (every chunk
 * decrypted on a worker and checked against its id), modes, owners where
 * permitted, mtimes, symlinks and hardlinks.
 *
 * The main thread walks the trees in order (subtrees requested a level
 * ahead), creates directories and symlinks, and asks the repository for the
 * blobs of the files ahead, up to a bound in bytes and files; the repository
 * connection batches those asks. Files are written by the restore workers
 * (worker-pool.ts): small ones in batches, large ones chunk by chunk on one
 * worker each. Directory metadata is applied last, deepest first, since
 * writing into a directory changes its mtime. target-fs.ts holds the rules
 * that keep every step from following a symlink planted in the target.
 */
export class Restorer {
  readonly stats: RestoreStats = { files: 0, dirs: 0, symlinks: 0, hardlinks: 0, bytes: 0, chunks: 0, duration_s: 0 };
  private readonly trees: TreeReader;
  private workers!: RestorePool;
  private readonly tasks = new Set<Promise<void>>();
  private failure: Error | undefined;
  private readonly dirMeta: { p: Buffer; m: EntryMeta }[] = [];
  /** first restored path of each hardlinked inode, and when its content is done */
  private readonly linked = new Map<string, { path: Buffer; done: Promise<void> }>();
  private readonly isRoot = process.getuid?.() === 0;
  private smallBytes = 0;
  private smallFiles = 0;
  private largeFiles = 0;
  /** large files waiting for a slot, in walk order */
  private readonly largeQueue: (() => void)[] = [];
  /** the walker, waiting for room (in the small-file budget or the large-file queue) */
  private wake: (() => void) | undefined;

  constructor(
    private readonly repo: Unlocked,
    private readonly opts: RestoreOptions,
  ) {
    this.trees = new TreeReader(repo);
  }

  async run(root: Id, started: number, now: () => number): Promise<RestoreStats> {
    const target = Buffer.from(path.resolve(this.opts.target));
    // The target itself is the caller's to name: symlinks on the way to it are followed.
    await fs.promises.mkdir(target, { recursive: true });
    this.workers = this.opts.pool ?? new RestorePool(restoreWorkerCount(), this.isRoot);
    this.workers.unlock(this.repo.master, this.repo.chunking.max);
    try {
      try {
        await this.dir(root, target, Buffer.alloc(0), !this.opts.filter);
        mark('restore: walk done');
      } catch (e) {
        this.failure ??= e as Error;
      }
      while (this.tasks.size) await Promise.allSettled([...this.tasks]);
      if (this.failure) throw this.failure;
      mark('restore: files written');
      for (let i = this.dirMeta.length - 1; i >= 0; i--) setDirMeta(this.dirMeta[i].p, this.dirMeta[i].m, this.isRoot);
    } finally {
      await this.workers.close();
    }
    this.stats.duration_s = (now() - started) / 1000;
    return this.stats;
  }

  /** `made` creates `dest` (and what leads to it) when it is only on the way to selected entries. */
  private async dir(id: Id, dest: Buffer, rel: Buffer, all: boolean, made: () => void = noop): Promise<void> {
    const node = await this.trees.read(id);
    if (rel.length === 0) mark('restore: root tree read');
    for (const e of node.entries) {
      if (e.name.length === 0 || e.name.includes(0x2f) || e.name.equals(DOT) || e.name.equals(DOTDOT)) {
        throw new KeepError('CORRUPT', `snapshot holds an unsafe name ${JSON.stringify(e.name.toString())}; refusing to restore outside the target`);
      }
    }
    const choices = node.entries.map((e): RestoreChoice => (all ? EVERYTHING : this.opts.filter!.choose(Buffer.concat([rel, SEP, e.name]).toString(), e.type === 'dir')));
    // Ask for the subtrees now: they arrive while this directory's files are fetched.
    node.entries.forEach((e, i) => {
      if (e.type === 'dir' && choices[i].descend) this.trees.read(TreeReader.subtree(node, e)).catch(noop);
    });
    for (const [i, e] of node.entries.entries()) {
      if (this.failure) throw this.failure;
      const { selected, descend } = choices[i];
      if (!selected && !descend) continue;
      const r = Buffer.concat([rel, SEP, e.name]);
      const p = Buffer.concat([dest, SEP, e.name]);
      if (selected) made();
      if (e.type === 'dir' && selected) {
        // Private until its own mode is applied at the end: nobody else can add entries meanwhile.
        ensureDir(p, 0o700);
        this.stats.dirs++;
        await this.dir(TreeReader.subtree(node, e), p, r, all);
        this.dirMeta.push({ p, m: metaOf(e) });
      } else if (e.type === 'dir') {
        // Only on the way to selected entries: made (without its metadata) when the first of them is.
        let exists = false;
        await this.dir(TreeReader.subtree(node, e), p, r, all, () => {
          if (exists) return;
          made();
          ensureDir(p, 0o777);
          this.stats.dirs++;
          exists = true;
        });
      } else if (e.type === 'symlink') {
        createSymlink(e.target!, p, metaOf(e), this.isRoot);
        this.stats.symlinks++;
      } else {
        await this.file(node, e, p);
      }
    }
  }

  private track(t: Promise<void>): void {
    const tracked = t.catch((err: Error) => {
      this.failure ??= err;
    });
    this.tasks.add(tracked);
    void tracked.finally(() => this.tasks.delete(tracked));
  }

  private async file(node: TreeNode, e: TreeEntry, p: Buffer): Promise<void> {
    if (e.nlink > 1) {
      const key = `${e.dev}:${e.ino}`;
      const first = this.linked.get(key);
      if (first) {
        this.track(
          first.done.then(() => {
            if (this.failure) return;
            createLink(first.path, p);
            this.stats.hardlinks++;
          }),
        );
        return;
      }
      let resolve!: () => void;
      this.linked.set(key, { path: p, done: new Promise((r) => (resolve = r)) });
      await this.content(node, e, p, resolve);
      return;
    }
    await this.content(node, e, p);
  }

  /** Start writing a file's content; waits only for room, not for the write. */
  private async content(node: TreeNode, e: TreeEntry, p: Buffer, done?: () => void): Promise<void> {
    const ids = fileChunks(node, e);
    const small = ids.length <= 1 && e.size <= SMALL_FILE;
    if (small) {
      while ((this.smallBytes > 0 && this.smallBytes + e.size > SMALL_BYTES_AHEAD) || this.smallFiles >= SMALL_FILES_AHEAD) await this.room();
    } else {
      while (this.largeQueue.length >= LARGE_WAITING) await this.room();
    }
    if (this.failure) throw this.failure;
    const t = small ? this.smallFile(ids, e, p) : this.largeSlot().then(() => this.largeFile(ids, e, p));
    this.track(done ? t.finally(done) : t);
  }

  /** Resolves when a large file may start (it then holds one of LARGE_FILES slots). */
  private largeSlot(): Promise<void> {
    if (this.largeFiles < LARGE_FILES) {
      this.largeFiles++;
      return Promise.resolve();
    }
    return new Promise((r) => this.largeQueue.push(r));
  }

  /** A large file is done: its slot goes to the next waiting one. */
  private largeDone(): void {
    const next = this.largeQueue.shift();
    if (next) next();
    else this.largeFiles--;
    this.freed();
  }

  private room(): Promise<void> {
    return new Promise((r) => (this.wake = r));
  }

  private freed(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  private async smallFile(ids: Id[], e: TreeEntry, p: Buffer): Promise<void> {
    this.smallBytes += e.size;
    this.smallFiles++;
    try {
      const stored = ids.length ? await this.repo.conn.getBlob(ids[0]) : undefined;
      if (this.failure) return;
      const size = await this.workers.writeFile({ path: p, id: ids[0], stored, size: e.size, ...metaOf(e) });
      if (this.stats.files === 0) mark('restore: first file written');
      this.finished(size, ids.length, p);
    } catch (err) {
      throw namedError(p, err);
    } finally {
      this.smallBytes -= e.size;
      this.smallFiles--;
      this.freed();
    }
  }

  private async largeFile(ids: Id[], e: TreeEntry, p: Buffer): Promise<void> {
    if (this.failure) return this.largeDone();
    const w = this.workers.largeFile(p);
    let ended = false;
    try {
      const fetches: (Promise<Buffer> | undefined)[] = [];
      const request = (i: number) => {
        const f = this.repo.conn.getBlob(ids[i]);
        // Awaited in order below; one failing first must not be an unhandled rejection, which kills the process.
        f.catch(noop);
        fetches[i] = f;
      };
      const written: Promise<number>[] = [];
      const window = chunkWindow(e.size, ids.length);
      for (let i = 0; i < Math.min(window, ids.length); i++) request(i);
      for (let i = 0; i < ids.length; i++) {
        if (this.failure) throw this.failure;
        const stored = await fetches[i]!;
        fetches[i] = undefined;
        written[i] = w.chunk(ids[i], stored);
        written[i].catch(noop);
        if (i + window < ids.length) {
          // The window bounds chunks held here and queued on the worker, should the disk be slower than the network.
          if (i > 0) await written[i - 1];
          request(i + window);
        }
      }
      await Promise.all(written);
      ended = true;
      const size = await w.end(metaOf(e), e.size);
      this.finished(size, ids.length, p);
    } catch (err) {
      throw namedError(p, err);
    } finally {
      if (!ended) await w.abort();
      this.largeDone();
    }
  }

  private finished(bytes: number, chunks: number, p: Buffer): void {
    this.stats.files++;
    this.stats.bytes += bytes;
    this.stats.chunks += chunks;
    this.opts.onProgress?.({ files: this.stats.files, bytes: this.stats.bytes, current: p.toString() });
  }
}

export type { TreeNode };
