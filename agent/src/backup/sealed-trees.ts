import { BlobType, EDGE_SIZE, HEADER_SIZE, Id, toHex } from '@keep/core';
import type { RepoConnection } from '../repo/connection.js';
import { mark } from '../startup/timing.js';

/**
 * A snapshot's tree blobs, fetched sealed while scrypt still runs.
 *
 * A re-backup compares the source with the parent snapshot's trees, and reading
 * them took one round trip per directory level after the key was open (~7 on the
 * bench tree, with keepd's work). Tree blobs carry their edge lists in plaintext
 * (docs/ARCHITECTURE.md, "Blob"), so the DAG can be walked without the key: this
 * fetches it a level at a time during the KDF (or, below a directory the walk
 * finds changed, when it does: backup/unchanged.ts), and the walk then opens the
 * blobs from memory. Nothing here is trusted: every blob is authenticated against its
 * id when the walk opens it (openBlob), and a blob that is damaged, missing or
 * refused here is simply fetched again by the walk, which reports the error.
 */
export class SealedTrees {
  /** fetched and not yet handed out */
  private readonly blobs = new Map<string, Promise<Buffer>>();
  /** every tree asked for -> the trees it points to (from its plaintext edges; none when it failed) */
  private readonly children = new Map<string, Promise<Id[]>>();
  private bytes = 0;
  /** set by close: no fetch starts after it */
  private stopped = false;

  constructor(private readonly conn: RepoConnection) {}

  /**
   * Fetch the trees below `root`, a level at a time, at most `max` of them
   * (and 2048 trees / 32 MiB in all: the walk reads the rest itself). Trees
   * fetched already are not asked for again, but what lies below them is.
   */
  fetchBelow(root: Id, max = Infinity): void {
    this.level([root], max).catch(() => undefined);
  }

  /**
   * Start no more fetches and wait for those under way. Before the connection
   * closes: a walk that took the source unread ends while levels are still
   * fetched, and a read racing an embedded repository's close crashed the
   * process from lmdb-js's read-transaction timer.
   */
  async close(): Promise<void> {
    this.stopped = true;
    await Promise.allSettled(this.children.values());
  }

  private async level(ids: Id[], budget: number): Promise<void> {
    const visit = ids.slice(0, budget);
    const lists = await Promise.all(visit.map((id) => this.subtrees(id)));
    const seen = new Set<string>();
    const next: Id[] = [];
    for (const id of lists.flat()) {
      const hex = toHex(id);
      if (!seen.has(hex)) {
        seen.add(hex); // identical directories share a tree
        next.push(id);
      }
    }
    mark(`sealed trees level: ${visit.length}`);
    if (next.length && budget > visit.length) await this.level(next, budget - visit.length);
  }

  private subtrees(id: Id): Promise<Id[]> {
    const hex = toHex(id);
    let c = this.children.get(hex);
    if (!c) {
      if (this.stopped || this.children.size >= MAX_TREES || this.bytes >= MAX_BYTES) return Promise.resolve([]);
      const p = this.conn.getBlob(id);
      this.blobs.set(hex, p);
      c = p.then(
        (b) => {
          this.bytes += b.length;
          return treeEdges(b);
        },
        () => {
          this.blobs.delete(hex); // the walk asks keepd itself, and sees the error
          return [];
        },
      );
      this.children.set(hex, c);
    }
    return c;
  }

  /** A connection like `conn` whose getBlob hands out each prefetched tree once (the walk caches what it opens). */
  serving(conn: RepoConnection = this.conn): RepoConnection {
    const take = (id: Id): Promise<Buffer> => {
      const hex = toHex(id);
      const p = this.blobs.get(hex);
      if (!p) return conn.getBlob(id);
      this.blobs.delete(hex);
      return p.catch(() => conn.getBlob(id));
    };
    return new Proxy(conn, {
      get(target, key) {
        if (key === 'getBlob') return take;
        const v = Reflect.get(target, key, target) as unknown;
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
  }
}

const MAX_TREES = 2048;
const MAX_BYTES = 32 * 1024 * 1024;

/**
 * The subtree ids in a sealed tree blob's plaintext edge list (blob/format.ts), without
 * the objects parseBlob makes for every chunk edge. A blob that is not a well-formed
 * tree yields none: the walk's own read reports it.
 */
function treeEdges(b: Buffer): Id[] {
  if (b.length < HEADER_SIZE + 4 || b[1] !== BlobType.Tree) return [];
  const n = b.readUInt32BE(HEADER_SIZE);
  const start = HEADER_SIZE + 4;
  if (start + n * EDGE_SIZE > b.length) return [];
  const ids: Id[] = [];
  // copies: the blob itself is let go once the walk has it
  for (let o = start; o < start + n * EDGE_SIZE; o += EDGE_SIZE) if (b[o] === BlobType.Tree) ids.push(Buffer.from(b.subarray(o + 1, o + EDGE_SIZE)));
  return ids;
}
