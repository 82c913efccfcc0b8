import { KeepError, TreeNode } from '@keep/core';
import type { RestoreChoice, RestoreFilter } from '../selection/restore-filter.js';

const SEP = Buffer.from('/');
const DOT = Buffer.from('.');
const DOTDOT = Buffer.from('..');
const EVERYTHING: RestoreChoice = { selected: true, descend: true };

/** A name that would lead outside its directory ends the restore (shared by the restore walk and --verify's). */
export function checkNames(node: TreeNode): void {
  for (const e of node.entries) {
    if (e.name.length === 0 || e.name.includes(0x2f) || e.name.equals(DOT) || e.name.equals(DOTDOT)) {
      throw new KeepError('CORRUPT', `snapshot holds an unsafe name ${JSON.stringify(e.name.toString())}; refusing to restore outside the target`);
    }
  }
}

/** What --include / --exclude make of each entry of a directory (`rel`: its path in the snapshot); everything without a filter. */
export function entryChoices(node: TreeNode, rel: Buffer, filter: RestoreFilter | undefined): RestoreChoice[] {
  return node.entries.map((e): RestoreChoice => (filter ? filter.choose(Buffer.concat([rel, SEP, e.name]).toString(), e.type === 'dir') : EVERYTHING));
}
