import { BlobType } from '../blob/format.js';
import { parseBlob } from '../blob/seal.js';
import { Id, toHex } from '../ids.js';
import type { BlobView, Repository } from '../repository.js';
import { newSeenSet, SeenSet } from '../dag/seen-set.js';
import { walkDag } from '../dag/walk.js';

/**
 * Every blob id (hex) reachable from the tree ids `roots` (hex), walking the
 * plaintext edge lists: needs no key. A subtree reachable twice is walked
 * once; ids the index lacks are listed but not followed. A damaged tree
 * throws unless `onDamaged` is given (then it is reported and not followed).
 * `view`: whose bytes of each tree are read (a source's own copies first:
 * BlobViews.ofSource), the primary ones by default.
 */
export async function reachable(repo: Repository, roots: Iterable<string>, onDamaged?: (hex: string, e: Error) => void, view: BlobView = repo.views.primary): Promise<SeenSet> {
  const seen = newSeenSet();
  return walkDag<Id>([...roots].map((r) => Buffer.from(r, 'hex')), toHex, async (id, hex) => {
    const at = view(id);
    if (!at || at.record.type !== BlobType.Tree) return undefined;
    let edges;
    try {
      ({ edges } = parseBlob(await repo.readBlob(id, view)));
    } catch (e) {
      if (!onDamaged) throw e;
      onDamaged(hex, e as Error);
      return undefined;
    }
    const trees: Id[] = [];
    for (const e of edges) {
      if (e.type === BlobType.Tree) trees.push(e.id);
      else seen.add(toHex(e.id));
    }
    return trees;
  }, seen);
}
