import { BlobType, fileChunks, Id, toHex, TreeEntry, TreeNode } from '@keep/core';
import { TreeReader } from '../tree/tree-reader.js';

/** A name or link target for JSON: its text, and its bytes in hex as well when they are not UTF-8. */
function bytesField(key: string, b: Buffer): Record<string, string> {
  const text = b.toString('utf8');
  return Buffer.from(text, 'utf8').equals(b) ? { [key]: text } : { [key]: text, [`${key}_hex`]: b.toString('hex') };
}

function entryJson(node: TreeNode, e: TreeEntry) {
  return {
    ...bytesField('name', e.name),
    type: e.type,
    mode: e.mode,
    uid: e.uid,
    gid: e.gid,
    mtime: e.mtime,
    ctime: e.ctime,
    ino: e.ino,
    dev: e.dev,
    nlink: e.nlink,
    size: e.size,
    ...(e.type === 'file' ? { content: fileChunks(node, e).map(toHex) } : {}),
    ...(e.type === 'dir' ? { subtree: toHex(TreeReader.subtree(node, e)) } : {}),
    ...(e.target ? bytesField('target', e.target) : {}),
  };
}

/** A decrypted tree node as `keep cat tree` shows it: every stored field, and the plaintext edge list. */
export function treeJson(id: Id, node: TreeNode) {
  return {
    id: toHex(id),
    entries: node.entries.map((e) => entryJson(node, e)),
    edges: node.edges.map((x) => ({ type: x.type === BlobType.Tree ? 'tree' : 'data', id: toHex(x.id) })),
  };
}
