import { fileChunks, Id, TreeEntry, TreeNode } from '@keep/core';
import { TreeReader } from './tree-reader.js';

/** One difference between two snapshots' trees, as `keep diff` reports it. */
export interface Change {
  path: string;
  change: 'added' | 'removed' | 'modified' | 'metadata';
  type: string;
}

function sameContent(a: TreeNode, ea: TreeEntry, b: TreeNode, eb: TreeEntry): boolean {
  if (ea.type !== eb.type) return false;
  if (ea.type === 'symlink') return Buffer.compare(ea.target!, eb.target!) === 0;
  if (ea.type !== 'file') return true;
  const ca = fileChunks(a, ea);
  const cb = fileChunks(b, eb);
  return ea.size === eb.size && ca.length === cb.length && ca.every((id, i) => id.equals(cb[i]));
}

/** Walk two trees side by side; identical subtrees (same id) are skipped without reading them. */
export async function diffTrees(trees: TreeReader, a: Id | undefined, b: Id | undefined, prefix: string, out: Change[]): Promise<void> {
  if (a && b && a.equals(b)) return;
  const na = a ? await trees.read(a) : undefined;
  const nb = b ? await trees.read(b) : undefined;
  const ma = new Map((na?.entries ?? []).map((e) => [e.name.toString('hex'), e]));
  const mb = new Map((nb?.entries ?? []).map((e) => [e.name.toString('hex'), e]));
  const names = [...new Set([...ma.keys(), ...mb.keys()])].sort();
  for (const k of names) {
    const ea = ma.get(k);
    const eb = mb.get(k);
    const path = `${prefix}/${(ea ?? eb)!.name.toString()}`;
    if (ea && !eb) out.push({ path, change: 'removed', type: ea.type });
    else if (!ea && eb) out.push({ path, change: 'added', type: eb.type });
    else if (ea && eb) {
      if (!sameContent(na!, ea, nb!, eb)) out.push({ path, change: 'modified', type: eb.type });
      else if (ea.mode !== eb.mode || ea.uid !== eb.uid || ea.gid !== eb.gid || ea.mtime[0] !== eb.mtime[0] || ea.mtime[1] !== eb.mtime[1]) {
        if (ea.type !== 'dir') out.push({ path, change: 'metadata', type: eb.type });
      }
    }
    const sa = ea?.type === 'dir' ? TreeReader.subtree(na!, ea) : undefined;
    const sb = eb?.type === 'dir' ? TreeReader.subtree(nb!, eb) : undefined;
    if (sa || sb) await diffTrees(trees, sa, sb, path, out);
  }
}
