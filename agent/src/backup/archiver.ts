import fs from 'node:fs';
import {
  chunkFile,
  StreamChunker,
  chunkStream,
  emptyStats,
  fileChunks,
  findEntry,
  Id,
  KeepError,
  SnapshotStats,
  TreeBuilder,
  TreeNode,
} from '@keep/core';
import type { Unlocked } from '../repo/open.js';
import { TreeReader } from '../tree/tree-reader.js';
import type { RunOptions, WalkResult } from './run.js';
import { entryMeta, EntryMeta, inodeKey, lstatEntry, sameEntry, unchanged } from './metadata.js';
import { asUnreadable, checkPathLength, closeDir, openDir, OpenDir, openFile, source, Unreadable } from './safe-open.js';
import { buildTrie, PathTrie } from './path-trie.js';
import { recordedPaths } from './recorded-meta.js';
import { NamedChunks, uploadChunkList, uploadChunks, Uploader, uploadTree } from './uploader.js';

/** A run's snapshot options (backup/run.ts) and what the walk reads. */
export interface BackupOptions extends RunOptions {
  /** files and directories to back up (absolute or relative to cwd) */
  paths?: string[];
  /** or a single stream stored as one file */
  stdin?: { name: string; stream: AsyncIterable<Uint8Array> };
  onProgress?: (p: Progress) => void;
  /** `item`: the path the warning is about (restic's JSON "error" message names it) */
  onWarning?: (message: string, item?: string) => void;
  /** true for an entry the selection flags leave out (selection/backup-filter.ts): absent, not warned about */
  exclude?: (full: Buffer, st: fs.BigIntStats) => boolean;
  /** how the walk sees the file system (default: directly); backup/unchanged.ts notes what it answered */
  view?: SourceView;
  /** directories known unchanged since the parent (backup/unchanged.ts): taken without reading their trees */
  unchanged?: {
    known(dir: Buffer, id: Id): UnchangedSubtree | undefined;
    /** told each directory the walk stored, and as which tree */
    storedDir(dir: Buffer, id: Id): void;
  };
}

/** What lies below an unchanged directory, for the snapshot's counts. */
export interface UnchangedSubtree {
  files: number;
  dirs: number;
  /** sizes of the files below that have one name only */
  bytes: number;
  /** files below with more names (nlink > 1): counted once per inode across the snapshot */
  hardlinks: { inode: string; size: number }[];
}

/**
 * The archiver's questions to the file system, about path `p`; `at` (default
 * `p`) is how to reach it now (safe-open.ts: through its directory's descriptor).
 */
export interface SourceView {
  /** lstat with nanosecond times; undefined when nothing is there, throws on other errors */
  lstat(p: Buffer, at?: Buffer): fs.BigIntStats | undefined;
  /** names in a directory, sorted by bytes */
  readdir(dir: Buffer, at?: Buffer): Buffer[];
  readlink(p: Buffer, at?: Buffer): Buffer;
}

export const directView: SourceView = {
  lstat: (p, at = p) => lstatEntry(at),
  readdir: (dir, at = dir) => fs.readdirSync(at, { encoding: 'buffer' }).sort(Buffer.compare),
  readlink: (p, at = p) => fs.readlinkSync(at, { encoding: 'buffer' }),
};

/** Directories by how they compare with the parent snapshot's (restic's summary counts them so). */
export interface DirCounts {
  dirs_new: number;
  dirs_changed: number;
  dirs_unmodified: number;
}

export interface Progress {
  files: number;
  bytes_read: number;
  bytes_sent: number;
  current?: string;
}

const SEP = Buffer.from('/');

/**
 * Turns a set of paths (or a stream) into a snapshot: walks the file system,
 * reuses the parent snapshot's chunk lists for unchanged files, chunks and
 * names the rest, hands the chunks to the Uploader, and builds one tree node
 * per directory bottom-up.
 */
export class Archiver {
  readonly stats: SnapshotStats = emptyStats();
  private readonly uploader: Uploader;
  private readonly trees: TreeReader;
  private readonly view: SourceView;
  /** hardlinked files seen in this backup: read once */
  private readonly links = new Map<string, { ids: Id[]; size: number }>();
  /** hardlinked inodes already in stats.bytes: the snapshot's size counts each once, as restic's restore size does */
  private readonly countedInodes = new Set<string>();
  /** entries not stored as found (unreadable, vanished, replaced, a directory stored empty): each warned about */
  skipped = 0;
  readonly dirCounts: DirCounts = { dirs_new: 0, dirs_changed: 0, dirs_unmodified: 0 };
  /** the file being read now, and stats.bytes_read when its reading began (for progress within a large file) */
  reading: { path: string; readBefore: number } | undefined;

  constructor(
    private readonly repo: Unlocked,
    private readonly opts: BackupOptions,
    uploader: Uploader,
  ) {
    this.uploader = uploader;
    this.trees = new TreeReader(repo);
    this.view = opts.view ?? directView;
  }

  /** Walk the source and store its trees; backup/run.ts finishes the uploads and commits the snapshot. */
  async run(): Promise<WalkResult> {
    const started = this.opts.clock.now();
    const parentRootId = this.opts.parent ? Buffer.from(this.opts.parent.root, 'hex') : undefined;
    // (with directories known unchanged, only the trees of changed ones are read: on demand)
    if (parentRootId && !this.opts.unchanged) this.trees.prefetch(parentRootId);
    const parentRoot = parentRootId ? await this.trees.read(parentRootId) : undefined;
    let root: Id;
    if (this.opts.stdin) root = await this.stdinTree(this.opts.stdin);
    else {
      const trie = buildTrie(this.opts.paths ?? []);
      root = trie.real ? await this.realDir(Buffer.alloc(0), SEP, lstatEntry(SEP)!, parentRoot, parentRootId) : await this.virtualDir(trie, Buffer.alloc(0), parentRoot, parentRootId);
    }
    return { root, stats: this.stats, started, paths: recordedPaths(this.opts) };
  }

  private warn(message: string, item?: Buffer): void {
    this.opts.onWarning?.(message, item && (item.length ? item.toString() : '/'));
  }

  /** An entry left out (or stored empty) because the source would not give it as found. */
  private skip(full: Buffer, why: string): void {
    this.skipped++;
    this.warn(`${full.length ? full.toString() : '/'}: ${why}`, full);
  }

  private progress(current?: Buffer): void {
    this.opts.onProgress?.({ files: this.stats.files, bytes_read: this.stats.bytes_read, bytes_sent: this.uploader.stats.bytes_sent, current: current?.toString() });
  }

  /** Seal and offer a directory's tree node, unless it is the parent snapshot's node for it (`previous`). */
  private storeTree(b: TreeBuilder, previous?: Id): Promise<Id> {
    return uploadTree(this.uploader, this.repo.keys, b, this.opts.compression, previous);
  }

  private readonly countRead = (n: number): void => {
    this.stats.bytes_read += n;
  };

  private chunkIds(chunks: AsyncIterable<Buffer>): Promise<NamedChunks> {
    return uploadChunks(this.uploader, this.repo.keys, chunks, this.countRead);
  }

  private async stdinTree(stdin: { name: string; stream: AsyncIterable<Uint8Array> }): Promise<Id> {
    this.reading = { path: stdin.name, readBefore: 0 };
    const { ids, size } = await this.chunkIds(chunkStream(stdin.stream, this.repo.chunking));
    this.reading = undefined;
    const now = this.opts.clock.now();
    const t: [number, number] = [Math.floor(now / 1000), (now % 1000) * 1e6];
    const b = new TreeBuilder();
    b.addFile({ name: Buffer.from(stdin.name), type: 'file', mode: 0o600, uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0, mtime: t, ctime: t, ino: 0, dev: 0, nlink: 1, size }, ids);
    this.stats.files = 1;
    this.stats.files_new = 1;
    this.stats.bytes = size;
    return this.storeTree(b);
  }

  /** A directory on the way to a named path: only the named children are included. */
  private async virtualDir(trie: PathTrie, dirPath: Buffer, parent: TreeNode | undefined, parentId: Id | undefined): Promise<Id> {
    const b = new TreeBuilder();
    for (const { name, trie: child } of trie.children.values()) {
      const full = Buffer.concat([dirPath, SEP, name]);
      const st = this.view.lstat(full);
      // A path the user named (or one leading to it) must exist; "vanished" is for entries found while walking.
      if (!st) throw new KeepError('NOT_FOUND', `${full.toString()}: no such file or directory`);
      if (child.real) {
        await this.entry(b, full, full, name, parent);
        continue;
      }
      const p = findEntry(parent, name);
      const subId = p?.type === 'dir' && parent ? TreeReader.subtree(parent, p) : undefined;
      const sub = subId ? await this.trees.read(subId) : undefined;
      const id = await this.virtualDir(child, full, sub, subId);
      const meta = entryMeta(name, st, 'dir');
      b.addDir(meta, id);
      this.stats.dirs++;
      this.countDir(subId, subId !== undefined && id.equals(subId) && sameEntry(p, meta));
    }
    return this.storeTree(b, parentId);
  }

  /** Directory `dirPath` (reached as `at`, found by lstat as `st`): its entries, read through its own descriptor. */
  private async realDir(dirPath: Buffer, at: Buffer, st: fs.BigIntStats, parent: TreeNode | undefined, parentId: Id | undefined): Promise<Id> {
    const b = new TreeBuilder();
    let names: Buffer[] = [];
    let dir: OpenDir | undefined;
    try {
      dir = openDir(at, st);
      const d = dir;
      names = source(() => this.view.readdir(dirPath.length ? dirPath : SEP, d.at));
    } catch (e) {
      if (!(e instanceof Unreadable)) throw e;
      this.skip(dirPath, `cannot list directory (${e.reason}); stored empty`);
    }
    // Same names as the parent's node, and every entry the same: the parent's node is this directory's,
    // without encoding, hashing or sealing it again (most directories of most re-backups).
    let same = dir !== undefined && parentId !== undefined && parent !== undefined && names.length === parent.entries.length;
    try {
      for (const name of names) {
        let s = this.entry(b, Buffer.concat([dirPath, SEP, name]), Buffer.concat([dir!.at, SEP, name]), name, parent);
        if (typeof s !== 'boolean') s = await s;
        same &&= s;
      }
    } finally {
      if (dir) closeDir(dir);
    }
    const id = same ? parentId! : await this.storeTree(b, parentId);
    this.opts.unchanged?.storedDir(dirPath, id);
    return id;
  }

  /**
   * One file system object `full` (reached as `at`), added to its directory's builder; true when it is exactly
   * the parent snapshot's entry. One the source will not give as found is skipped with a warning.
   * Synchronous unless there is something to read (a directory, a changed file): most entries of a
   * re-backup are neither, and a promise per entry was much of the walk's garbage.
   */
  private entry(b: TreeBuilder, full: Buffer, at: Buffer, name: Buffer, parent: TreeNode | undefined): boolean | Promise<boolean> {
    try {
      const same = this.entryAs(b, full, at, name, parent);
      return typeof same === 'boolean' ? same : same.catch((e: unknown) => this.unreadable(e, full));
    } catch (e) {
      return this.unreadable(e, full);
    }
  }

  /** An entry the source would not give as found: skipped, or the error is not the source's and ends the backup. */
  private unreadable(e: unknown, full: Buffer): false {
    if (!(e instanceof Unreadable)) throw e;
    this.skip(full, `cannot read (${e.reason}); skipped`);
    return false;
  }

  private entryAs(b: TreeBuilder, full: Buffer, at: Buffer, name: Buffer, parent: TreeNode | undefined): boolean | Promise<boolean> {
    checkPathLength(full);
    const st = source(() => this.view.lstat(full, at));
    if (!st) {
      this.skip(full, 'vanished during backup; skipped');
      return false;
    }
    if (this.opts.exclude?.(full, st)) return false;
    const p = findEntry(parent, name);
    if (st.isDirectory()) return this.dirEntry(b, full, at, name, st, p, parent);
    else if (st.isFile()) {
      const meta = entryMeta(name, st, 'file');
      const reuse = p && parent && unchanged(p, meta) ? fileChunks(parent, p) : undefined;
      const content = this.file(full, at, st, meta, reuse, p !== undefined);
      if (!(content instanceof Promise)) return this.addFile(b, meta, content, reuse, p);
      return content.then((c) => this.addFile(b, meta, c, reuse, p));
    } else if (st.isSymbolicLink()) {
      const target = source(() => this.view.readlink(full, at));
      const meta = entryMeta(name, st, 'symlink');
      b.addSymlink({ ...meta, target });
      return p?.type === 'symlink' && p.target !== undefined && p.target.equals(target) && sameEntry(p, meta);
    } else {
      this.warn(`${full.toString()}: special file (device, FIFO or socket) skipped`, full);
      return false;
    }
  }

  private async dirEntry(b: TreeBuilder, full: Buffer, at: Buffer, name: Buffer, st: fs.BigIntStats, p: TreeNode['entries'][number] | undefined, parent: TreeNode | undefined): Promise<boolean> {
    const subId = p?.type === 'dir' && parent ? TreeReader.subtree(parent, p) : undefined;
    const meta = entryMeta(name, st, 'dir');
    const known = subId && this.opts.unchanged?.known(full, subId);
    let id: Id;
    if (known) {
      id = subId;
      this.stats.files += known.files;
      this.stats.files_unmodified += known.files;
      this.stats.bytes += known.bytes;
      for (const l of known.hardlinks) this.countBytes(l.size, l.inode);
      this.stats.dirs += known.dirs;
      this.dirCounts.dirs_unmodified += known.dirs;
    } else {
      const sub = subId ? await this.trees.read(subId) : undefined;
      id = await this.realDir(full, at, st, sub, subId);
    }
    b.addDir(meta, id);
    this.stats.dirs++;
    const same = subId !== undefined && id.equals(subId) && sameEntry(p, meta);
    this.countDir(subId, same);
    return same;
  }

  /** A file's entry, with the size that was read: a file that grew or shrank while being read still restores exactly. */
  private addFile(b: TreeBuilder, meta: EntryMeta, content: NamedChunks, reuse: Id[] | undefined, p: TreeNode['entries'][number] | undefined): boolean {
    // (content.size differs from the lstat's only for a file read now: never the parent's entry, whatever sameEntry says)
    meta.size = content.size;
    b.addFile(meta, content.ids);
    return reuse !== undefined && content.ids === reuse && sameEntry(p, meta);
  }

  /**
   * A file's chunk list and the bytes it covers: the parent's (unchanged), a hardlink's read earlier in this
   * backup, or (a promise) read now from the object `st` describes (safe-open.ts); throws Unreadable.
   */
  private file(full: Buffer, at: Buffer, st: fs.BigIntStats, meta: EntryMeta, reuse: Id[] | undefined, existed: boolean): NamedChunks | Promise<NamedChunks> {
    if (reuse) {
      this.count(meta, meta.size, 'files_unmodified');
      return { ids: reuse, size: meta.size };
    }
    const linkKey = meta.nlink > 1 ? `${meta.dev}:${meta.ino}:${meta.size}:${meta.mtime.join('.')}` : undefined;
    const known = linkKey ? this.links.get(linkKey) : undefined;
    if (known) {
      this.count(meta, known.size, existed ? 'files_changed' : 'files_new');
      return known;
    }
    return this.read(full, at, st, meta, linkKey, existed);
  }

  private async read(full: Buffer, at: Buffer, st: fs.BigIntStats, meta: EntryMeta, linkKey: string | undefined, existed: boolean): Promise<NamedChunks> {
    this.progress(full);
    this.reading = { path: full.toString(), readBefore: this.stats.bytes_read };
    const fd = openFile(at, st);
    let content: NamedChunks;
    try {
      // Only the file's own read errors skip it (sourceReads); a repository error (keepd gone, refused upload) ends the backup.
      if (meta.size < SMALL_FILE) {
        // Read whole and chunked at once: no generators, and no promise per chunk.
        const chunks = source(() => StreamChunker.file(fd, this.repo.chunking, meta.size));
        content = await uploadChunkList(this.uploader, this.repo.keys, chunks, this.countRead);
      } else content = await this.chunkIds(sourceReads(chunkFile(fd, this.repo.chunking, meta.size)));
    } finally {
      this.reading = undefined;
      fs.closeSync(fd);
    }
    if (content.size !== meta.size) this.warn(`${full.toString()}: changed size while being read (${meta.size} -> ${content.size} bytes); stored what was read`, full);
    this.count(meta, content.size, existed ? 'files_changed' : 'files_new');
    if (linkKey) this.links.set(linkKey, content);
    this.progress(full);
    return content;
  }

  /** A directory stored: new when the parent had none by its name, unmodified when its node and entry are the parent's. */
  private countDir(parentId: Id | undefined, same: boolean): void {
    this.dirCounts[parentId === undefined ? 'dirs_new' : same ? 'dirs_unmodified' : 'dirs_changed']++;
  }

  private count(meta: EntryMeta, size: number, kind: 'files_new' | 'files_changed' | 'files_unmodified'): void {
    this.stats.files++;
    this.countBytes(size, meta.nlink > 1 ? inodeKey(meta.dev, meta.ino) : undefined);
    this.stats[kind]++;
  }

  /** A file's size into the snapshot's, unless it is a further name of an inode already counted. */
  private countBytes(size: number, inode: string | undefined): void {
    if (inode !== undefined) {
      if (this.countedInodes.has(inode)) return;
      this.countedInodes.add(inode);
    }
    this.stats.bytes += size;
  }
}

/**
 * Metadata calls and small-file reads are synchronous: each async fs call is a
 * thread-pool round trip (~50 µs here), and with five of them per file a tree
 * of small files spent most of its time waiting. The main thread produces
 * chunks for the workers anyway; large files still stream asynchronously.
 */
const SMALL_FILE = 1024 * 1024;

/** A file's chunks, its read errors (EIO...) as Unreadable: told apart from the uploader's, which end the backup. */
async function* sourceReads(chunks: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  try {
    for await (const c of chunks) yield c;
  } catch (e) {
    throw asUnreadable(e);
  }
}
