import { applyRetention, Clock, describePolicy, groupBySource, isEmptyPolicy, isPgSource, KeepError, pgCatalog, Repository, RetentionPolicy, processClock, Tier, TIER_RETENTION, TIERS, unneededWal } from '@keep/core';
import { keepdRepoOptions } from '../data-lock.js';

export interface ForgetOptions {
  source?: string;
  /** explicit policy; empty means "each source's tier preset" */
  policy: RetentionPolicy;
  /** use this tier's preset for every source */
  tier?: Tier;
  dryRun?: boolean;
}

export interface ForgetGroup {
  source: string;
  policy: string;
  snapshots: { id: string; time: string; keep: boolean; reasons: string[] }[];
  removed: string[];
  /**
   * PostgreSQL sources: the policy applies to base backups (and any other
   * non-WAL snapshot); WAL files go when no kept base backup needs them.
   */
  wal?: { files: number; removed: string[]; cutoffs: { timeline: number; start_wal: string }[]; note?: string };
}

/**
 * Apply retention per source (restic's forget). With no explicit policy a
 * source uses its tier's preset (the tier of its newest snapshot); a source
 * with neither is left alone and reported, as restic refuses an empty policy.
 * The parent of any open backup session is protected.
 */
export async function runForget(data: string, o: ForgetOptions, clock: Clock = processClock()): Promise<{ groups: ForgetGroup[]; skipped: string[] }> {
  const repo = await Repository.open(data, keepdRepoOptions(data, { clock }));
  try {
    const protect = new Map<string, string>();
    for (const s of repo.liveSessions()) if (s.parent) protect.set(s.parent, 'parent of an open backup session');
    const groups: ForgetGroup[] = [];
    const skipped: string[] = [];
    const toRemove: string[] = [];
    for (const [source, snaps] of groupBySource(repo.snapshots(o.source ? { source: o.source } : {}))) {
      const newestTier = snaps[snaps.length - 1].tier;
      const tier = o.tier ?? (isEmptyPolicy(o.policy) && newestTier && newestTier in TIERS ? (newestTier as Tier) : undefined);
      const policy = isEmptyPolicy(o.policy) && tier ? TIER_RETENTION[tier] : o.policy;
      if (isEmptyPolicy(policy)) {
        skipped.push(source);
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
        source,
        policy: (tier && policy === TIER_RETENTION[tier] ? `tier ${tier}: ` : '') + describePolicy(policy),
        snapshots: decisions.map((d) => ({ id: d.snapshot.id, time: d.snapshot.time, keep: d.keep, reasons: d.reasons })),
        removed,
        ...(wal ? { wal } : {}),
      });
    }
    if (!o.dryRun && toRemove.length) await repo.removeSnapshots(toRemove);
    return { groups, skipped };
  } finally {
    await repo.close();
  }
}

export function policyFromFlags(v: Record<string, unknown>): RetentionPolicy {
  const n = (k: string): number | undefined => {
    const x = v[k];
    if (x === undefined) return undefined;
    const num = Number(x);
    if (!Number.isInteger(num) || num < -1) throw new KeepError('INVALID_ARGUMENT', `--${k} takes a whole number (or -1 for all), not ${String(x)}`);
    return num;
  };
  const d = (k: string) => v[k] as string | undefined;
  const p: RetentionPolicy = {
    last: n('keep-last'),
    hourly: n('keep-hourly'),
    daily: n('keep-daily'),
    weekly: n('keep-weekly'),
    monthly: n('keep-monthly'),
    yearly: n('keep-yearly'),
    within: d('keep-within'),
    withinHourly: d('keep-within-hourly'),
    withinDaily: d('keep-within-daily'),
    withinWeekly: d('keep-within-weekly'),
    withinMonthly: d('keep-within-monthly'),
    withinYearly: d('keep-within-yearly'),
    tags: v['keep-tag'] as string[] | undefined,
  };
  for (const k of Object.keys(p) as (keyof RetentionPolicy)[]) if (p[k] === undefined) delete p[k];
  return p;
}

export const FORGET_FLAGS = Object.fromEntries(
  [
    'keep-last',
    'keep-hourly',
    'keep-daily',
    'keep-weekly',
    'keep-monthly',
    'keep-yearly',
    'keep-within',
    'keep-within-hourly',
    'keep-within-daily',
    'keep-within-weekly',
    'keep-within-monthly',
    'keep-within-yearly',
    'source',
    'tier',
  ].map((k) => [k, { type: 'string' as const }]),
);
