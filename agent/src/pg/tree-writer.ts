import fs from 'node:fs';
import { chunkFile, Compression, emptyStats, Id, KeepError, SnapshotStats, StreamChunker, TreeBuilder, TreeEntry } from '@keep/core';
import { entryMeta, EntryMeta } from '../backup/metadata.js';
import { openFile, Unreadable } from '../backup/safe-open.js';
import { uploadChunks, Uploader, uploadTree } from '../backup/uploader.js';
import type { Unlocked } from '../repo/open.js';

/** Files up to this size are read in one synchronous call (most of a data directory's files). */
const SMALL_FILE = 1024 * 1024;
const SEP = Buffer.from('/');

/** What to leave out of a walk: relative paths ("base/1/pg_internal.init"), as text. */
export type Exclude = (rel: string, kind: 'file' | 'dir' | 'symlink' | 'other') => boolean;

/**
 * Tree building for a live database's files. Unlike the Archiver, every file
 * is read again (no reuse of a parent's chunk lists: PostgreSQL rewrites
 * pages in place, and a change within the file system's timestamp tick after
 * the previous read would keep size and mtime; only WAL replayed from this
 * backup's start checkpoint would not repair a page copied stale before it).
 * Dedup still sends only chunks the repository lacks. Files that vanish or
 * shrink while being read are normal here (dropped or truncated relations;
 * WAL replay recreates them) and are skipped or stored as read, silently.
 * Files are opened as the Archiver opens them (backup/safe-open.ts): a file
 * swapped for a symlink or a FIFO after its lstat ends the base backup with a
 * clear error instead of being read as what it replaced.
 */
export class PgTreeWriter {
  readonly stats: SnapshotStats = emptyStats();

  constructor(
    private readonly repo: Unlocked,
    private readonly uploader: Uploader,
    private readonly compression: Compression,
    private readonly onProgress?: (files: number, bytes: number, current: string) => void,
    /** symlinks stored as the directories they point to (pg_wal made by initdb -X lives elsewhere) */
    private readonly follow: ReadonlySet<string> = new Set(),
  ) {}

  storeTree(b: TreeBuilder): Promise<Id> {
    return uploadTree(this.uploader, this.repo.keys, b, this.compression);
  }

  private chunks(chunks: AsyncIterable<Buffer> | Iterable<Buffer>): Promise<{ ids: Id[]; size: number }> {
    return uploadChunks(this.uploader, this.repo.keys, chunks, (n) => (this.stats.bytes_read += n));
  }

  /** A file made here (backup_label, tablespace_map), owned and dated like `like`. */
  async addData(b: TreeBuilder, name: string, data: Buffer, like: EntryMeta): Promise<void> {
    const chunker = new StreamChunker(this.repo.chunking);
    const { ids, size } = await this.chunks([...chunker.push(data), ...chunker.finish()]);
    b.addFile({ ...like, name: Buffer.from(name), type: 'file', mode: 0o600, size, nlink: 1, ino: 0 }, ids);
    this.count(size);
  }

  /** The metadata of a directory itself (for its entry in its parent). */
  static dirMeta(dir: string, name: string): EntryMeta {
    return entryMeta(Buffer.from(name), fs.lstatSync(dir, { bigint: true }), 'dir');
  }

  /**
   * Walk `dir`; returns its tree builder, not yet stored, so callers can add
   * files before sealing it (the data directory's root gets backup_label).
   */
  async walk(dir: string, exclude: Exclude, rel = ''): Promise<TreeBuilder> {
    const b = new TreeBuilder();
    let names: Buffer[];
    try {
      names = fs.readdirSync(dir, { encoding: 'buffer' }).sort(Buffer.compare);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT' && rel) return b;
      throw new KeepError('UNAVAILABLE', `${dir}: cannot list (${(e as NodeJS.ErrnoException).code})`);
    }
    const dirBuf = Buffer.from(dir);
    for (const name of names) {
      const full = Buffer.concat([dirBuf, SEP, name]);
      const r = rel ? `${rel}/${name.toString()}` : name.toString();
      let st: fs.BigIntStats;
      try {
        st = fs.lstatSync(full, { bigint: true });
        if (st.isSymbolicLink() && this.follow.has(r)) st = fs.statSync(full, { bigint: true });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw e;
      }
      const kind = st.isDirectory() ? 'dir' : st.isFile() ? 'file' : st.isSymbolicLink() ? 'symlink' : 'other';
      if (kind === 'other' || exclude(r, kind)) continue;
      if (kind === 'dir') {
        const sub = await this.walk(full.toString(), exclude, r);
        b.addDir(entryMeta(name, st, 'dir'), await this.storeTree(sub));
        this.stats.dirs++;
      } else if (kind === 'symlink') {
        b.addSymlink({ ...entryMeta(name, st, 'symlink'), target: fs.readlinkSync(full, { encoding: 'buffer' }) });
      } else {
        const meta = entryMeta(name, st, 'file');
        const content = await this.file(full, st);
        if (content) {
          b.addFile({ ...meta, size: content.size }, content.ids);
          this.count(content.size);
          this.onProgress?.(this.stats.files, this.stats.bytes_read, r);
        }
      }
    }
    return b;
  }

  private async file(full: Buffer, st: fs.BigIntStats): Promise<{ ids: Id[]; size: number } | undefined> {
    let fd: number;
    try {
      fd = openFile(full, st);
    } catch (e) {
      if (e instanceof Unreadable && e.reason === 'ENOENT') return undefined;
      throw e instanceof Unreadable ? new KeepError('UNAVAILABLE', `${full.toString()}: cannot read (${e.reason})`) : e;
    }
    try {
      const size = Number(st.size);
      return await this.chunks(size < SMALL_FILE ? StreamChunker.file(fd, this.repo.chunking, size) : chunkFile(fd, this.repo.chunking, size));
    } finally {
      fs.closeSync(fd);
    }
  }

  private count(size: number): void {
    this.stats.files++;
    this.stats.files_new++;
    this.stats.bytes += size;
  }
}

export type { TreeEntry };
