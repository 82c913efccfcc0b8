import fs from 'node:fs';
import { fileChunks, Id } from '@keep/core';
import type { Unlocked } from '../repo/open.js';
import type { RestoreFilter } from '../selection/restore-filter.js';
import { compareContent } from './content-check.js';
import { checkNames, entryChoices } from './entry-choices.js';
import { lstatIfAny } from './target-fs.js';
import { TreeReader } from '../tree/tree-reader.js';

const SEP = Buffer.from('/');

/**
 * restore --verify: after the restore, every regular file the snapshot and
 * the filter select is read back from the target and compared with the
 * snapshot's chunk ids (content-check.ts), whatever the restore did with it:
 * written, judged unchanged, or kept by --overwrite. So it checks what the
 * target holds, not what the restore meant to write. A directory that is not
 * a real directory in the target is not entered: its files count as missing.
 */
export async function verifyTarget(
  repo: Unlocked,
  trees: TreeReader,
  root: Id,
  target: Buffer,
  filter: RestoreFilter | undefined,
  onFailure: (message: string) => void,
): Promise<{ verified: number; failures: string[] }> {
  let verified = 0;
  const failures: string[] = [];
  const dir = async (id: Id, dest: Buffer, rel: Buffer, present: boolean): Promise<void> => {
    const node = await trees.read(id);
    checkNames(node);
    const choices = entryChoices(node, rel, filter);
    for (const [i, e] of node.entries.entries()) {
      const { selected, descend } = choices[i];
      const p = Buffer.concat([dest, SEP, e.name]);
      const r = Buffer.concat([rel, SEP, e.name]);
      if (e.type === 'dir' && (selected || descend)) {
        await dir(TreeReader.subtree(node, e), p, r, present && !!lstatIfAny(p)?.isDirectory());
      } else if (e.type === 'file' && selected) {
        const state = present ? await compareContent(p, fileChunks(node, e), e.size, repo.chunking, repo.keys) : 'missing';
        verified++;
        if (state !== 'same') {
          const message = `${r.toString()}: ${state === 'differs' ? 'content differs from the snapshot' : state}`;
          failures.push(message);
          onFailure(message);
        }
      }
    }
  };
  // The target itself is the caller's to name: a symlink to it is followed, as the restore followed it.
  await dir(root, target, Buffer.alloc(0), fs.statSync(target, { throwIfNoEntry: false })?.isDirectory() ?? false);
  return { verified, failures };
}
