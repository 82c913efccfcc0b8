import { SpillingSet } from './spilling-set.js';

/**
 * The keys a DAG walk has met (walk.ts). The one place that picks its
 * implementation: V8's Set holds at most 2^24 (16.7M) entries, so a set
 * that grows past `spillAt` keys moves to a scratch LMDB file
 * (spilling-set.ts); below it the V8 Set is kept (faster, and ~100 bytes a
 * key: the default bounds a set's memory near 100 MB).
 */
export interface SeenSet extends Iterable<string> {
  has(key: string): boolean;
  add(key: string): unknown;
  readonly size: number;
  /** Release what the set holds on disk; it is empty afterwards. */
  close(): void;
}

/** Keys kept in a V8 Set before a seen set spills to disk. */
export const SEEN_SET_SPILL_AT = 1 << 20;

export interface SeenSetOptions {
  /** spill past this many keys (tests force it low) */
  spillAt?: number;
  /** where the scratch file goes (default: the OS temporary directory) */
  dir?: string;
}

export function newSeenSet(opts: SeenSetOptions = {}): SeenSet {
  return new SpillingSet(opts.spillAt ?? SEEN_SET_SPILL_AT, opts.dir);
}
