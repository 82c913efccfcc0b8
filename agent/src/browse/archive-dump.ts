import { Id, TreeEntry, TreeNode } from '@keep/core';
import { inodeKey } from '../backup/metadata.js';
import type { Unlocked } from '../repo/open.js';
import { TreeReader } from '../tree/tree-reader.js';
import { fileContent } from './file-content.js';
import type { ArchiveEntry, ArchiveWriter } from './archive-entry.js';

const SEP = Buffer.from('/');

/**
 * A directory of a snapshot as an archive (tar-writer.ts, zip-writer.ts):
 * every entry below it with its mode, owner ids and mtime, symlinks as
 * symlinks, further names of a hardlinked inode as hardlinks to the first
 * (where the format has them). `prefix` is the directory's own
 * archive path (restic's layout: the path in the snapshot without its leading
 * `/`, the directory itself included), or empty to put its content at the
 * archive's root (`SNAPSHOT:PATH`).
 */
export async function dumpArchive(repo: Unlocked, trees: TreeReader, dir: { tree: Id; entry?: TreeEntry }, prefix: Buffer, archive: ArchiveWriter): Promise<void> {
  const firstNames = new Map<string, Buffer>();
  if (prefix.length && dir.entry) await archive.add(header(dir.entry, prefix));

  const walk = async (tree: Id, at: Buffer): Promise<void> => {
    const node = await trees.read(tree);
    for (const e of node.entries) {
      const p = at.length ? Buffer.concat([at, SEP, e.name]) : e.name;
      if (e.type === 'dir') {
        await archive.add(header(e, p));
        await walk(TreeReader.subtree(node, e), p);
      } else if (e.type === 'symlink') {
        await archive.add({ ...header(e, p), link: e.target });
      } else await file(node, e, p);
    }
  };

  const file = async (node: TreeNode, e: TreeEntry, p: Buffer): Promise<void> => {
    if (e.nlink > 1 && archive.hardlinks) {
      const inode = inodeKey(e.dev, e.ino);
      const first = firstNames.get(inode);
      if (first) return archive.add({ ...header(e, p), type: 'hardlink', link: first });
      firstNames.set(inode, p);
    }
    await archive.add({ ...header(e, p), size: e.size }, fileContent(repo, node, e, `/${p.toString()}`));
  };

  trees.prefetch(dir.tree);
  await walk(dir.tree, prefix);
  await archive.finish();
}

function header(e: TreeEntry, p: Buffer): ArchiveEntry {
  return { path: p, type: e.type, mode: e.type === 'symlink' ? 0o777 : e.mode, uid: e.uid, gid: e.gid, mtime: e.mtime };
}
