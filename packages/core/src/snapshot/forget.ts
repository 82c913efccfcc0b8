import type { Clock } from '../clock.js';
import type { PruneReport } from '../gc/prune.js';
import type { Repository } from '../repository.js';
import { TIERS, type Tier } from '../tiers.js';
import { DEFAULT_GROUP_BY, GroupField, GroupKey, groupSnapshots, SnapshotGroup } from './grouping.js';
import { isPgSource, pgCatalog, unneededWal } from './pg.js';
import { applyRetention, describePolicy, isEmptyPolicy, RetentionPolicy, TIER_RETENTION } from './retention.js';
import type { Snapshot } from './snapshot.js';

/**
 * The forget engine, one for `keepd forget`, keepd's Forget RPC and an
 * embedded `keep forget`: restic's forget per group (grouping.ts), with
 * Keep's tier presets, PostgreSQL WAL retention and open sessions' parents
 * protected. Keyless: groups by paths through the records' paths_group.
 */
export interface ForgetOptions {
  source?: string;
  /** explicit policy; empty means "each group's tier preset" */
  policy: RetentionPolicy;
  /** use this tier's preset for every group */
  tier?: Tier;
  /** default source,paths */
  groupBy?: readonly GroupField[];
  dryRun?: boolean;
  /** then collect garbage (core gc/prune.ts); the caller runs it, not the engine */
  prune?: boolean;
}

export interface ForgetGroup {
  key: GroupKey;
  /** the group's source, when grouped by source (every PostgreSQL group is) */
  source?: string;
  policy: string;
  snapshots: { id: string; time: string; keep: boolean; reasons: string[] }[];
  removed: string[];
  /**
   * PostgreSQL sources: the policy applies to base backups (and any other
   * non-WAL snapshot); WAL files go when no kept base backup needs them.
   */
  wal?: { files: number; removed: string[]; cutoffs: { timeline: number; start_wal: string }[]; note?: string };
}

export interface ForgetResult {
  groups: ForgetGroup[];
  /** groups left alone for want of a policy, each named by groupLabel */
  skipped: string[];
  group_by: GroupField[];
  /** the garbage collection that followed, when asked for */
  prune?: PruneReport;
}

/** "source a, paths 1f2e…, tags [x, y]" (a group's key in words; a bare source name when grouped by source alone). */
export function groupLabel(key: GroupKey): string {
  const parts: string[] = [];
  if (key.source !== undefined) parts.push(key.source);
  if (key.paths_group !== undefined) parts.push(`paths ${key.paths_group ? key.paths_group.slice(0, 8) : 'none'}`);
  if (key.tags !== undefined) parts.push(`tags [${key.tags.join(', ')}]`);
  return parts.length ? parts.join(', ') : 'all snapshots';
}

/**
 * PostgreSQL sources stay one group each whatever the grouping (WAL
 * retention needs all of a source's base backups and WAL together).
 */
function groupsOf(list: Snapshot[], by: readonly GroupField[]): SnapshotGroup[] {
  const bySource = new Map<string, Snapshot[]>();
  for (const s of list) {
    const g = bySource.get(s.source);
    if (g) g.push(s);
    else bySource.set(s.source, [s]);
  }
  const pgSources = new Set([...bySource].filter(([, snaps]) => isPgSource(snaps)).map(([source]) => source));
  const pgGroups = [...pgSources].map((source) => ({ key: { source }, snapshots: bySource.get(source)! }));
  return [...groupSnapshots(list.filter((s) => !pgSources.has(s.source)), by), ...pgGroups];
}

/**
 * Apply retention per group. With no explicit policy a group uses its tier's
 * preset (the tier of its newest snapshot); a group with neither is left
 * alone and reported, as restic refuses an empty policy.
 */
export async function forgetSnapshots(repo: Pick<Repository, 'snapshots' | 'liveSessions' | 'removeSnapshots'>, o: ForgetOptions, clock: Clock): Promise<ForgetResult> {
  const by = [...(o.groupBy ?? DEFAULT_GROUP_BY)];
  const protect = new Map<string, string>();
  for (const s of repo.liveSessions()) if (s.parent) protect.set(s.parent, 'parent of an open backup session');
  const groups: ForgetGroup[] = [];
  const skipped: string[] = [];
  const toRemove: string[] = [];
  for (const { key, snapshots: snaps } of groupsOf(repo.snapshots(o.source ? { source: o.source } : {}), by)) {
    const newestTier = snaps[snaps.length - 1].tier;
    const tier = o.tier ?? (isEmptyPolicy(o.policy) && newestTier && newestTier in TIERS ? (newestTier as Tier) : undefined);
    const policy = isEmptyPolicy(o.policy) && tier ? TIER_RETENTION[tier] : o.policy;
    if (isEmptyPolicy(policy)) {
      skipped.push(groupLabel(key));
      continue;
    }
    const pg = isPgSource(snaps) ? pgCatalog(snaps) : undefined;
    const decisions = applyRetention(pg ? [...pg.bases.map((b) => b.snapshot), ...pg.other] : snaps, policy, clock.now(), { protect });
    const removed = decisions.filter((d) => !d.keep).map((d) => d.snapshot.id);
    toRemove.push(...removed);
    let wal: ForgetGroup['wal'];
    if (pg) {
      const kept = new Set(decisions.filter((d) => d.keep).map((d) => d.snapshot.id));
      const keptBases = pg.bases.filter((b) => kept.has(b.snapshot.id));
      const { remove, cutoffs } = unneededWal(
        keptBases,
        pg.wal.filter((w) => !protect.has(w.snapshot.id)),
      );
      wal = { files: pg.wal.length, removed: remove.map((w) => w.snapshot.id), cutoffs, ...(keptBases.length === 0 && pg.wal.length ? { note: 'no base backup kept: WAL left alone' } : {}) };
      toRemove.push(...wal.removed);
    }
    groups.push({
      key,
      ...(key.source !== undefined ? { source: key.source } : {}),
      policy: (tier && policy === TIER_RETENTION[tier] ? `tier ${tier}: ` : '') + describePolicy(policy),
      snapshots: decisions.map((d) => ({ id: d.snapshot.id, time: d.snapshot.time, keep: d.keep, reasons: d.reasons })),
      removed,
      ...(wal ? { wal } : {}),
    });
  }
  if (!o.dryRun && toRemove.length) await repo.removeSnapshots(toRemove);
  return { groups, skipped, group_by: by };
}
