import { KeepError } from '../errors.js';
import type { Snapshot } from './snapshot.js';

/**
 * restic's `--group-by host,paths,tags`, ours `source,paths,tags` (a source
 * already names its host). `paths` groups by the record's keyed path hash
 * (paths_group, sealed-meta.ts): keepd groups by paths it never sees.
 * Default source,paths, like restic's host,paths: a source that backs up
 * /etc and /home separately keeps each one's history under `--keep-last`.
 */
export type GroupField = 'source' | 'paths' | 'tags';

export const DEFAULT_GROUP_BY: readonly GroupField[] = ['source', 'paths'];

/** What a group's snapshots share: only the fields grouped by are set. */
export interface GroupKey {
  source?: string;
  /** the shared paths_group ('' for snapshots that record no paths) */
  paths_group?: string;
  /** sorted */
  tags?: string[];
}

export interface SnapshotGroup {
  key: GroupKey;
  snapshots: Snapshot[];
}

/** "source,paths" -> fields; "" groups nothing (all snapshots in one group), as restic's --group-by "". */
export function parseGroupBy(text: string | undefined): GroupField[] {
  if (text === undefined) return [...DEFAULT_GROUP_BY];
  const out: GroupField[] = [];
  for (const part of text.split(',').map((p) => p.trim())) {
    if (part === '') continue;
    if (part === 'host') throw new KeepError('INVALID_ARGUMENT', '--group-by host: a Keep source already names its host; use source');
    if (part !== 'source' && part !== 'paths' && part !== 'tags') throw new KeepError('INVALID_ARGUMENT', `--group-by takes a comma list of source, paths, tags; not ${part}`);
    if (!out.includes(part)) out.push(part);
  }
  return out;
}

export function groupKeyOf(s: Snapshot, by: readonly GroupField[]): GroupKey {
  const key: GroupKey = {};
  if (by.includes('source')) key.source = s.source;
  if (by.includes('paths')) key.paths_group = s.paths_group ?? '';
  if (by.includes('tags')) key.tags = [...s.tags].sort();
  return key;
}

/** Groups in order of first appearance; each keeps the input order of its snapshots. */
export function groupSnapshots(snapshots: readonly Snapshot[], by: readonly GroupField[]): SnapshotGroup[] {
  const groups = new Map<string, SnapshotGroup>();
  for (const s of snapshots) {
    const key = groupKeyOf(s, by);
    const k = JSON.stringify([key.source, key.paths_group, key.tags]);
    const g = groups.get(k);
    if (g) g.snapshots.push(s);
    else groups.set(k, { key, snapshots: [s] });
  }
  return [...groups.values()];
}
