import type { Id } from '@keep/core';
import type { RestoreFilter } from '../selection/restore-filter.js';
import { TreeReader } from '../tree/tree-reader.js';
import { entryChoices } from './entry-choices.js';

/** What a restore will go through: the files (and their bytes) the snapshot and --include / --exclude select. */
export interface RestorePlan {
  files: number;
  bytes: number;
}

const SEP = Buffer.from('/');

/**
 * Counts a restore's files and bytes from the snapshot's trees before
 * anything is written, so progress has a true total (percent, ETA) and an
 * interrupted restore can say how much it left. The trees are read a level
 * at a time (one round trip per level over gRPC) into `trees`' cache, where
 * the restore's own walk finds them. Selection is the walk's (entry-choices.ts);
 * every name of a hardlinked file counts, as the walk's total does.
 */
export async function planRestore(trees: TreeReader, root: Id, filter: RestoreFilter | undefined): Promise<RestorePlan> {
  const plan: RestorePlan = { files: 0, bytes: 0 };
  let level: { id: Id; rel: Buffer }[] = [{ id: root, rel: Buffer.alloc(0) }];
  while (level.length) {
    const nodes = await Promise.all(level.map((d) => trees.read(d.id)));
    const next: { id: Id; rel: Buffer }[] = [];
    nodes.forEach((node, i) => {
      const choices = entryChoices(node, level[i].rel, filter);
      node.entries.forEach((e, j) => {
        const { selected, descend } = choices[j];
        if (!selected && !descend) return;
        if (e.type === 'dir') next.push({ id: TreeReader.subtree(node, e), rel: Buffer.concat([level[i].rel, SEP, e.name]) });
        else if (e.type === 'file') {
          plan.files++;
          plan.bytes += e.size;
        }
      });
    });
    level = next;
  }
  return plan;
}
