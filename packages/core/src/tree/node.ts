import { Packr } from 'msgpackr';
import { BlobType } from '../blob/format.js';
import { Edge } from '../blob/seal.js';
import { corrupt } from '../errors.js';
import { Id } from '../ids.js';

/**
 * Tree node payload (the encrypted half of a tree blob; the edges are the
 * plaintext half, see blob/format.ts). One node per directory.
 *
 * payload = msgpack { v: 1, entries: TreeEntry[] }, entries sorted by name bytes.
 * A file's chunks are edges[chunks[0] .. chunks[0]+chunks[1]); a directory's
 * subtree is edges[subtree]. Names and symlink targets are raw bytes, so
 * names that are not UTF-8 survive.
 */
export type EntryType = 'file' | 'dir' | 'symlink';

export interface TreeEntry {
  name: Buffer;
  type: EntryType;
  mode: number;
  uid: number;
  gid: number;
  /** modification time: seconds and nanoseconds */
  mtime: [number, number];
  /** change time and inode: only used to decide whether a file changed since the parent snapshot */
  ctime: [number, number];
  ino: number;
  dev: number;
  nlink: number;
  size: number;
  /** files: [first edge, count] */
  chunks?: [number, number];
  /** dirs: edge index of the subtree */
  subtree?: number;
  /** symlinks: raw target bytes */
  target?: Buffer;
}

export interface TreeNode {
  entries: TreeEntry[];
  edges: Edge[];
}

const packr = new Packr({ useRecords: false, moreTypes: false, int64AsType: 'number' });

export function compareNames(a: Buffer, b: Buffer): number {
  return Buffer.compare(a, b);
}

export function encodeTreePayload(entries: TreeEntry[]): Buffer {
  return packr.pack({ v: 1, entries });
}

export function decodeTreePayload(payload: Buffer, edges: Edge[]): TreeNode {
  let doc: { v: number; entries: TreeEntry[] };
  try {
    doc = packr.unpack(payload);
  } catch (e) {
    throw corrupt(`tree payload does not decode: ${(e as Error).message}`);
  }
  if (doc?.v !== 1 || !Array.isArray(doc.entries)) throw corrupt('tree payload has an unknown version');
  for (const e of doc.entries) {
    e.name = Buffer.from(e.name);
    if (e.target) e.target = Buffer.from(e.target);
    if (e.chunks && e.chunks[0] + e.chunks[1] > edges.length) throw corrupt('tree entry points past its edge list');
    if (e.subtree !== undefined && (e.subtree >= edges.length || edges[e.subtree].type !== BlobType.Tree)) throw corrupt('tree entry has a bad subtree edge');
  }
  return { entries: doc.entries, edges };
}

/** The node's entry named `name`, found by bisection (entries are sorted by name bytes): no key strings, no map per node. */
export function findEntry(node: TreeNode | undefined, name: Buffer): TreeEntry | undefined {
  const es = node?.entries;
  if (!es) return undefined;
  let lo = 0;
  let hi = es.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const c = compareNames(es[mid].name, name);
    if (c === 0) return es[mid];
    if (c < 0) lo = mid + 1;
    else hi = mid - 1;
  }
  return undefined;
}

export function fileChunks(node: TreeNode, e: TreeEntry): Id[] {
  if (!e.chunks) return [];
  return node.edges.slice(e.chunks[0], e.chunks[0] + e.chunks[1]).map((x) => x.id);
}

/**
 * Builds one directory's node: entries plus the edge list they index into.
 * Each add copies its entry once; build() sorts and renumbers those copies in
 * place (a backup builds a node per directory: copies per entry were garbage).
 */
export class TreeBuilder {
  readonly entries: TreeEntry[] = [];
  private edges: Edge[] = [];

  addFile(e: Omit<TreeEntry, 'chunks' | 'subtree'>, chunkIds: Id[]): void {
    const first = this.edges.length;
    for (const id of chunkIds) this.edges.push({ type: BlobType.Data, id });
    this.entries.push({ ...e, chunks: [first, chunkIds.length] });
  }

  addDir(e: Omit<TreeEntry, 'chunks' | 'subtree'>, subtree: Id): void {
    this.edges.push({ type: BlobType.Tree, id: subtree });
    this.entries.push({ ...e, subtree: this.edges.length - 1 });
  }

  addSymlink(e: Omit<TreeEntry, 'chunks' | 'subtree'>): void {
    this.entries.push({ ...e });
  }

  /** Entries sorted by name, edges renumbered to match, so equal directories give equal ids. */
  build(): { entries: TreeEntry[]; edges: Edge[]; payload: Buffer } {
    const entries = this.entries.sort((a, b) => compareNames(a.name, b.name));
    const edges: Edge[] = [];
    for (const e of entries) {
      if (e.chunks) {
        const first = e.chunks[0];
        const count = e.chunks[1];
        e.chunks[0] = edges.length;
        for (let i = first; i < first + count; i++) edges.push(this.edges[i]);
      } else if (e.subtree !== undefined) {
        const at = e.subtree;
        e.subtree = edges.length;
        edges.push(this.edges[at]);
      }
    }
    // The entries now index the new list: built again (or added to), the builder stays consistent.
    this.edges = edges;
    return { entries, edges, payload: encodeTreePayload(entries) };
  }
}
