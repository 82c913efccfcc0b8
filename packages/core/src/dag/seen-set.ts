/**
 * The keys a DAG walk has met (walk.ts). The one place that picks its
 * implementation: V8's Set holds at most 2^24 (16.7M) entries, so a
 * repository with more blobs needs another one, swapped in here.
 */
export interface SeenSet extends Iterable<string> {
  has(key: string): boolean;
  add(key: string): unknown;
  readonly size: number;
}

export function newSeenSet(): SeenSet {
  return new Set<string>();
}
