import { BlobType, fileChunks, KeepError, openBlob, toHex, TreeEntry, TreeNode } from '@keep/core';
import type { Unlocked } from '../repo/open.js';

/** Chunks asked for ahead of the one being written: over gRPC they travel in one ReadBlobs call. */
const READ_AHEAD = 8;

/**
 * A file's content from the repository, chunk by chunk in order, each
 * decrypted and checked against its id (openBlob). The whole must add up to
 * the size the tree recorded.
 */
export async function* fileContent(repo: Unlocked, node: TreeNode, entry: TreeEntry, name: string): AsyncGenerator<Buffer> {
  const ids = fileChunks(node, entry);
  const asked: Promise<Buffer>[] = [];
  const ask = (i: number) => {
    if (i >= ids.length) return;
    const p = repo.conn.getBlob(ids[i]);
    p.catch(() => undefined); // a read still in flight when the dump stops must not crash the process
    asked.push(p);
  };
  for (let i = 0; i < READ_AHEAD; i++) ask(i);
  let total = 0;
  for (let i = 0; i < ids.length; i++) {
    const stored = await asked[i];
    asked[i] = undefined as unknown as Promise<Buffer>; // let it go once read
    ask(i + READ_AHEAD);
    const { type, plaintext } = openBlob(repo.keys, ids[i], stored);
    if (type !== BlobType.Data) throw new KeepError('CORRUPT', `${name}: chunk ${toHex(ids[i])} is a tree, not file data`);
    total += plaintext.length;
    yield plaintext;
  }
  if (total !== entry.size) throw new KeepError('CORRUPT', `${name}: its chunks hold ${total} bytes, the tree records ${entry.size}`);
}
