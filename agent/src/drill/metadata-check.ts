import fs from 'node:fs';
import { Id } from '@keep/core';
import { TreeReader } from '../tree/tree-reader.js';

const SEP = Buffer.from('/');

/**
 * A written drill's metadata check, after restore --verify checked every
 * file's size and content: each entry of the snapshot is in the scratch
 * directory with its type, permission bits, mtime (to the second) and, for
 * a symlink, its target. Owners are compared only when running as root (an
 * unprivileged restore cannot set them). Returns "path: what differs" lines.
 */
export async function checkMetadata(trees: TreeReader, root: Id, target: string, isRoot: boolean): Promise<{ checked: number; failures: string[] }> {
  let checked = 0;
  const failures: string[] = [];
  const walk = async (id: Id, dest: Buffer, rel: string): Promise<void> => {
    const node = await trees.read(id);
    for (const e of node.entries) {
      const p = Buffer.concat([dest, SEP, e.name]);
      const r = `${rel}/${e.name.toString()}`;
      checked++;
      const st = fs.lstatSync(p, { throwIfNoEntry: false });
      const type = st?.isDirectory() ? 'dir' : st?.isSymbolicLink() ? 'symlink' : st?.isFile() ? 'file' : st ? 'other' : 'missing';
      if (type !== e.type) {
        failures.push(`${r}: ${type}, the snapshot has a ${e.type}`);
        continue;
      }
      if (e.type === 'symlink') {
        if (!fs.readlinkSync(p, { encoding: 'buffer' }).equals(e.target ?? Buffer.alloc(0))) failures.push(`${r}: symlink target differs`);
      } else {
        if ((st!.mode & 0o7777) !== (e.mode & 0o7777)) failures.push(`${r}: mode ${(st!.mode & 0o7777).toString(8)}, the snapshot has ${(e.mode & 0o7777).toString(8)}`);
        if (Math.floor(st!.mtimeMs / 1000) !== e.mtime[0]) failures.push(`${r}: mtime differs`);
        if (isRoot && (st!.uid !== e.uid || st!.gid !== e.gid)) failures.push(`${r}: owner differs`);
      }
      if (e.type === 'dir') await walk(TreeReader.subtree(node, e), p, r);
    }
  };
  await walk(root, Buffer.from(target), '');
  return { checked, failures };
}
