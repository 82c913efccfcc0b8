import { BlobType, decodeTreePayload, Id, KeepError, openBlob, toHex, TreeEntry, TreeNode } from '@keep/core';
import type { Unlocked } from '../repo/open.js';

/** Fetches and decrypts tree nodes, keeping recently used ones (trees are small and re-read by ls/diff/restore). */
export class TreeReader {
  private readonly cache = new Map<string, Promise<TreeNode>>();

  constructor(
    private readonly repo: Unlocked,
    private readonly capacity = 4096,
  ) {}

  read(id: Id): Promise<TreeNode> {
    const hex = toHex(id);
    let p = this.cache.get(hex);
    if (!p) {
      p = this.fetch(id);
      if (this.cache.size >= this.capacity) this.cache.delete(this.cache.keys().next().value!);
      this.cache.set(hex, p);
      p.catch(() => this.cache.delete(hex));
    }
    return p;
  }

  private async fetch(id: Id): Promise<TreeNode> {
    const stored = await this.repo.conn.getBlob(id);
    const { type, edges, plaintext } = openBlob(this.repo.keys, id, stored);
    if (type !== BlobType.Tree) throw new KeepError('CORRUPT', `blob ${toHex(id)} should be a tree but is data`);
    return decodeTreePayload(plaintext, edges);
  }

  /**
   * Start reading the trees below `root`, a level at a time, so that a walk
   * that follows finds them cached: the reads of one level go out together
   * (one ReadBlobs round trip over gRPC instead of one per directory). Stops
   * at half the cache's capacity, so it never evicts what it fetched; the walk
   * reads the rest on demand. Errors surface when the walk reads that tree.
   */
  prefetch(root: Id): void {
    const budget = this.capacity >> 1;
    let fetched = 0;
    const level = async (ids: Id[]): Promise<void> => {
      const nodes = await Promise.all(ids.map((id) => this.read(id)));
      const next: Id[] = [];
      for (const node of nodes) {
        for (const e of node.entries) {
          if (e.type !== 'dir' || fetched >= budget) continue;
          next.push(TreeReader.subtree(node, e));
          fetched++;
        }
      }
      if (next.length) await level(next);
    };
    level([root]).catch(() => undefined);
  }

  /** The subtree id of a directory entry in `node`. */
  static subtree(node: TreeNode, e: TreeEntry): Id {
    return node.edges[e.subtree!].id;
  }

  /** Visit every entry depth-first, with its path (bytes) from the root. */
  async *walk(root: Id, prefix: Buffer = Buffer.alloc(0)): AsyncGenerator<{ path: Buffer; entry: TreeEntry; node: TreeNode }> {
    const node = await this.read(root);
    for (const entry of node.entries) {
      const p = Buffer.concat([prefix, Buffer.from('/'), entry.name]);
      yield { path: p, entry, node };
      if (entry.type === 'dir') yield* this.walk(TreeReader.subtree(node, entry), p);
    }
  }
}
