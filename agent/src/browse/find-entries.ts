import { Id, TreeEntry } from '@keep/core';
import { TreeReader } from '../tree/tree-reader.js';
import { childMayMatch, matches, Pattern } from '../selection/pattern.js';

const SEP = Buffer.from('/');

export interface FindOptions {
  patterns: Pattern[];
  /** entries modified at or after / at or before these times (ms), when given */
  oldest?: number;
  newest?: number;
}

/**
 * restic's find over one snapshot's tree: an entry is found when one of the
 * patterns matches its whole path (restic's filter.Match: a pattern without a
 * leading `/` matches at any depth, so a bare name matches that name anywhere,
 * and, as in every restic pattern, what lies below a matching directory), and
 * its mtime is within the bounds. A directory is walked only when something
 * below it may match.
 */
export async function* findEntries(trees: TreeReader, root: Id, o: FindOptions): AsyncGenerator<{ path: Buffer; entry: TreeEntry }> {
  const walk = async function* (tree: Id, prefix: Buffer): AsyncGenerator<{ path: Buffer; entry: TreeEntry }> {
    const node = await trees.read(tree);
    for (const entry of node.entries) {
      const path = Buffer.concat([prefix, SEP, entry.name]);
      const text = path.toString();
      const hit = o.patterns.some((p) => matches(p, text));
      if (hit && withinTimes(entry, o)) yield { path, entry };
      if (entry.type === 'dir' && (hit || o.patterns.some((p) => childMayMatch(p, text)))) yield* walk(TreeReader.subtree(node, entry), path);
    }
  };
  trees.prefetch(root);
  yield* walk(root, Buffer.alloc(0));
}

function withinTimes(e: TreeEntry, o: FindOptions): boolean {
  const ms = e.mtime[0] * 1000 + e.mtime[1] / 1e6;
  return !(o.oldest !== undefined && ms < o.oldest) && !(o.newest !== undefined && ms > o.newest);
}
