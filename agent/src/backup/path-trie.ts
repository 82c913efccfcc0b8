import path from 'node:path';

/** A node of the virtual hierarchy leading from / to the paths given. */
export interface PathTrie {
  children: Map<string, { name: Buffer; trie: PathTrie }>;
  /** set when this path itself was named: back it up whole */
  real: boolean;
}

/** Absolute paths as a trie from /, so a snapshot keeps where each path lived (restic's layout). */
export function buildTrie(paths: string[]): PathTrie {
  const root: PathTrie = { children: new Map(), real: false };
  for (const p of paths) {
    const parts = path.resolve(p).split('/').filter(Boolean);
    let t = root;
    for (const part of parts) {
      const name = Buffer.from(part);
      const key = name.toString('hex');
      let c = t.children.get(key);
      if (!c) t.children.set(key, (c = { name, trie: { children: new Map(), real: false } }));
      t = c.trie;
    }
    t.real = true;
  }
  return root;
}
