import crypto from 'node:crypto';
import { openJson, sealJson } from '../keys/sealed-json.js';
import type { RepoKeys } from '../keys/subkeys.js';
import type { Snapshot } from './snapshot.js';

/**
 * What a snapshot record holds that keepd must not read: the backed-up paths
 * (file names) and the backing-up user. They travel in `sealed_meta`,
 * AES-256-GCM under keys.snapshotMetaKey (HKDF of the master key, label
 * keep/v1/snapshot-meta; a random 96-bit nonce per record), base64 of
 * nonce | ciphertext | tag. The record's MAC covers it, so it cannot be moved
 * to another record.
 *
 * Retention groups by paths (restic's default host,paths) and keepd applies
 * retention, so the record also carries `paths_group`: HMAC-SHA256 under
 * keys.pathsGroupKey (label keep/v1/paths-group) of the sorted paths, 16
 * bytes in hex. keepd sees only which snapshots share a path set, never the
 * set; without the key it cannot test a guess either.
 */

export interface SnapshotMeta {
  /** absolute paths as given to backup, sorted (restic's `paths`) */
  paths: string[];
  username: string;
}

/** the additional data of every sealed_meta (keys/sealed-json.ts) */
const LABEL = 'keep/v1/snapshot-meta';

/** The sorted, de-duplicated path set: the same set always gives the same group. */
export function normalPaths(paths: readonly string[]): string[] {
  return [...new Set(paths)].sort();
}

/** The keyed hash naming a path set (empty set: no group id, like records written before). */
export function pathsGroupOf(keys: Pick<RepoKeys, 'pathsGroupKey'>, paths: readonly string[]): string | undefined {
  const sorted = normalPaths(paths);
  if (sorted.length === 0) return undefined;
  const mac = crypto.createHmac('sha256', keys.pathsGroupKey).update(JSON.stringify(['keep/v1/paths-group', sorted])).digest();
  return mac.subarray(0, 16).toString('hex');
}

/** The two record fields for a backup of `paths` by `username`. */
export function sealMeta(keys: Pick<RepoKeys, 'snapshotMetaKey' | 'pathsGroupKey'>, meta: SnapshotMeta): { sealed_meta: string; paths_group?: string } {
  const sealed = sealJson(keys.snapshotMetaKey, LABEL, { paths: normalPaths(meta.paths), username: meta.username });
  const group = pathsGroupOf(keys, meta.paths);
  return { sealed_meta: sealed, ...(group ? { paths_group: group } : {}) };
}

/**
 * A record's paths and user; empty for records written before sealed_meta,
 * undefined when it does not open (damaged: the record's MAC fails too).
 */
export function openMeta(keys: Pick<RepoKeys, 'snapshotMetaKey'>, s: Pick<Snapshot, 'sealed_meta'>): SnapshotMeta | undefined {
  if (!s.sealed_meta) return { paths: [], username: '' };
  const m = openJson(keys.snapshotMetaKey, LABEL, s.sealed_meta) as Partial<SnapshotMeta> | undefined;
  if (m === undefined || m === null || typeof m !== 'object') return undefined;
  return { paths: Array.isArray(m.paths) ? m.paths.filter((p) => typeof p === 'string') : [], username: typeof m.username === 'string' ? m.username : '' };
}
