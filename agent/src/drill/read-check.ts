import { Id } from '@keep/core';
import { fileContent } from '../browse/file-content.js';
import type { Unlocked } from '../repo/open.js';
import { checkNames } from '../restore/entry-choices.js';
import { TreeReader } from '../tree/tree-reader.js';

const SEP = Buffer.from('/');

/**
 * A --no-write drill: every file of the snapshot fetched as a restore
 * fetches it (the same connection and batching), each chunk authenticated
 * and checked against its id and each file's total against the size the
 * tree records (fileContent), nothing written. `parallel` files at once
 * (the restore's worker count); a hardlinked inode is read once.
 */
export async function readCheck(repo: Unlocked, root: Id, parallel: number, onFile: (bytes: number) => void): Promise<{ files: number; bytes: number; dirs: number; symlinks: number }> {
  const trees = new TreeReader(repo);
  const out = { files: 0, bytes: 0, dirs: 0, symlinks: 0 };
  const seen = new Set<string>();
  const running = new Set<Promise<void>>();
  let failure: unknown;
  const readFile = async (node: Awaited<ReturnType<TreeReader['read']>>, e: (typeof node.entries)[number], name: string) => {
    let bytes = 0;
    for await (const part of fileContent(repo, node, e, name)) bytes += part.length;
    out.files++;
    out.bytes += bytes;
    onFile(bytes);
  };
  const walk = async (id: Id, rel: Buffer): Promise<void> => {
    const node = await trees.read(id);
    checkNames(node);
    for (const e of node.entries) {
      if (failure) throw failure;
      const r = Buffer.concat([rel, SEP, e.name]);
      if (e.type === 'dir') {
        out.dirs++;
        await walk(TreeReader.subtree(node, e), r);
      } else if (e.type === 'symlink') out.symlinks++;
      else {
        if (e.nlink > 1) {
          const key = `${e.dev}:${e.ino}`;
          if (seen.has(key)) continue;
          seen.add(key);
        }
        while (running.size >= parallel) await Promise.race(running);
        const t: Promise<void> = readFile(node, e, r.toString())
          .catch((err) => void (failure ??= err))
          .finally(() => running.delete(t));
        running.add(t);
      }
    }
  };
  try {
    await walk(root, Buffer.alloc(0));
  } finally {
    await Promise.allSettled([...running]);
  }
  if (failure) throw failure;
  return out;
}
