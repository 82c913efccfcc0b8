import { Id, KeepError, TreeEntry, TreeNode } from '@keep/core';
import { TreeReader } from '../tree/tree-reader.js';

/**
 * What a path names inside a snapshot. The root (`/`) is a directory with no
 * entry of its own; anything else is an entry of its parent's node, and a
 * directory also has the id of its own tree.
 */
export interface Located {
  /** the path as given, cleaned: `/`, or `/a/b` */
  path: string;
  entry?: TreeEntry;
  /** the node holding `entry` */
  node?: TreeNode;
  /** a directory's (or the root's) tree */
  tree?: Id;
}

/** SNAPSHOT[:PATH] (restic's form): snapshot ids are hex, so the first `:` ends the id. */
export function splitSnapshotRef(ref: string): { snapshot: string; path?: string } {
  const colon = ref.indexOf(':');
  return colon < 0 ? { snapshot: ref } : { snapshot: ref.slice(0, colon), path: ref.slice(colon + 1) };
}

/** Components of a path in a snapshot: `/a//b/` and `a/b` are the same path. */
export function pathParts(p: string): string[] {
  const parts = p.split('/').filter((x) => x !== '' && x !== '.');
  if (parts.includes('..')) throw new KeepError('INVALID_ARGUMENT', `a path in a snapshot holds no \`..\`: ${p}`);
  return parts;
}

/** Follow `p` from the snapshot's root tree; a name that is not there is NOT_FOUND (symlinks are not followed). */
export async function locate(trees: TreeReader, root: Id, p: string): Promise<Located> {
  const parts = pathParts(p);
  let at: Located = { path: '/', tree: root };
  for (const part of parts) {
    if (!at.tree) throw new KeepError('NOT_FOUND', `${at.path} is a ${at.entry!.type}, not a directory`);
    const node = await trees.read(at.tree);
    const name = Buffer.from(part);
    const entry = node.entries.find((e) => e.name.equals(name));
    const path = `${at.path === '/' ? '' : at.path}/${part}`;
    if (!entry) throw new KeepError('NOT_FOUND', `${path} is not in the snapshot`);
    at = { path, entry, node, tree: entry.type === 'dir' ? TreeReader.subtree(node, entry) : undefined };
  }
  return at;
}
