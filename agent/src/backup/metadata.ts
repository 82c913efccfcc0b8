import fs, { type BigIntStats } from 'node:fs';
import type { EntryType, TreeEntry } from '@keep/core';

export type EntryMeta = Omit<TreeEntry, 'chunks' | 'subtree'>;

const NS = 1_000_000_000n;
const split = (ns: bigint): [number, number] => [Number(ns / NS), Number(ns % NS)];

/** One inode on one device: hardlinked names share it (a snapshot's size counts it once). */
export function inodeKey(dev: number, ino: number): string {
  return `${dev}:${ino}`;
}

/** lstat with nanosecond times; undefined when nothing is there, throws on other errors. */
export function lstatEntry(p: string | Buffer): BigIntStats | undefined {
  try {
    return fs.lstatSync(p, { bigint: true });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

/** Tree entry metadata from an lstat taken with { bigint: true } (nanosecond times). */
export function entryMeta(name: Buffer, st: BigIntStats, type: EntryType): EntryMeta {
  return {
    name,
    type,
    mode: Number(st.mode) & 0o7777,
    uid: Number(st.uid),
    gid: Number(st.gid),
    mtime: split(st.mtimeNs),
    ctime: split(st.ctimeNs),
    ino: Number(st.ino),
    dev: Number(st.dev),
    nlink: Number(st.nlink),
    size: type === 'file' ? Number(st.size) : 0,
  };
}

/** Size, inode, mtime and ctime as the parent snapshot recorded them. */
function sameSignature(prev: TreeEntry, cur: EntryMeta): boolean {
  return (
    prev.size === cur.size &&
    prev.ino === cur.ino &&
    prev.mtime[0] === cur.mtime[0] &&
    prev.mtime[1] === cur.mtime[1] &&
    prev.ctime[0] === cur.ctime[0] &&
    prev.ctime[1] === cur.ctime[1]
  );
}

/** Unchanged since the parent snapshot: same size, mtime, ctime and inode (restic's rule; dev is left out, it changes across reboots on some file systems). */
export function unchanged(prev: TreeEntry | undefined, cur: EntryMeta): boolean {
  return prev !== undefined && prev.type === 'file' && sameSignature(prev, cur);
}

/** Every field a tree node stores for the entry is the same (the node's bytes for it would be too). */
export function sameEntry(prev: TreeEntry | undefined, cur: EntryMeta): boolean {
  return (
    prev !== undefined &&
    prev.type === cur.type &&
    sameSignature(prev, cur) &&
    prev.mode === cur.mode &&
    prev.uid === cur.uid &&
    prev.gid === cur.gid &&
    prev.dev === cur.dev &&
    prev.nlink === cur.nlink
  );
}
