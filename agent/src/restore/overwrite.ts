import type fs from 'node:fs';
import { KeepError, TreeEntry } from '@keep/core';

/**
 * restore --overwrite, restic's four modes for an entry already in the target:
 * - always (default): the content is compared with the snapshot's chunks and
 *   only a file that differs is rewritten; metadata is applied to every file.
 * - if-changed: as always, but a file whose size and mtime equal the
 *   snapshot's is taken as unchanged without reading it.
 * - if-newer: replaced only when the snapshot's mtime is later than its own.
 * - never: left as it is.
 */
export type OverwriteMode = 'always' | 'if-changed' | 'if-newer' | 'never';

const MODES: readonly OverwriteMode[] = ['always', 'if-changed', 'if-newer', 'never'];

export function parseOverwrite(value: string | undefined): OverwriteMode {
  if (value === undefined) return 'always';
  if ((MODES as readonly string[]).includes(value)) return value as OverwriteMode;
  throw new KeepError('INVALID_ARGUMENT', `--overwrite takes ${MODES.join(', ')}, not ${value}`);
}

/**
 * What a restore does with one entry of the snapshot (restic's verbose
 * actions; `skipped` is ours: left by --overwrite without comparing, where
 * restic says `unchanged`).
 */
export type ItemAction = 'restored' | 'updated' | 'unchanged' | 'skipped' | 'deleted';

/** The snapshot's mtime in nanoseconds. */
const entryMtimeNs = (e: TreeEntry): bigint => BigInt(e.mtime[0]) * 1_000_000_000n + BigInt(e.mtime[1]);

/**
 * Restored times pass through a double (futimes takes seconds; ~240 ns at
 * today's dates) and symlinks' through a microsecond timeval: mtimes within
 * two microseconds are equal.
 */
const SAME_MTIME_NS = 2000n;

export function sameMtime(e: TreeEntry, st: fs.BigIntStats): boolean {
  const d = st.mtimeNs - entryMtimeNs(e);
  return d < SAME_MTIME_NS && d > -SAME_MTIME_NS;
}

/**
 * The first step of the decision for an entry that exists in the target
 * (`st`, from lstat): `replace` (write the snapshot's), `keep` (leave it,
 * files_skipped), or `compare` (a regular file whose content decides).
 */
export function existingEntry(mode: OverwriteMode, e: TreeEntry, st: fs.BigIntStats): 'replace' | 'keep' | 'compare' | 'unchanged' {
  if (mode === 'never') return 'keep';
  if (mode === 'if-newer') return entryMtimeNs(e) > st.mtimeNs + SAME_MTIME_NS ? 'replace' : 'keep';
  if (e.type !== 'file' || !st.isFile() || BigInt(e.size) !== st.size) return 'replace';
  // if-changed trusts size and mtime; a difference in either is checked as always does
  return mode === 'if-changed' && sameMtime(e, st) ? 'unchanged' : 'compare';
}
