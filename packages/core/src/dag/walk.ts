import { newSeenSet, SeenSet } from './seen-set.js';

/**
 * Depth-first walk of a DAG (snapshot trees): every node is visited once,
 * however many parents reach it. A stack: roots and children are pushed in
 * order and the last pushed is visited first. `keyOf` names a node in
 * `seen`; `visit` returns the children to walk (a leaf: none). Callers may
 * add keys to `seen` themselves (leaves they account for without a visit).
 */
export async function walkDag<T>(
  roots: Iterable<T>,
  keyOf: (node: T) => string,
  visit: (node: T, key: string) => Promise<Iterable<T> | undefined>,
  seen: SeenSet = newSeenSet(),
): Promise<SeenSet> {
  const stack: T[] = [...roots];
  while (stack.length) {
    const node = stack.pop()!;
    const key = keyOf(node);
    if (seen.has(key)) continue;
    seen.add(key);
    const children = await visit(node, key);
    if (children) for (const c of children) stack.push(c);
  }
  return seen;
}
