import { recordedTime, RetentionPolicy, Snapshot, Tier, TIER_RETENTION, TIERS } from '@keep/core';
import type { KeepdConfig } from './config.js';
import type { SourcePolicyInput } from './config-schema.js';

/** Where a source's expected interval came from. */
export type ExpectationOrigin = 'config' | 'tier' | 'observed' | 'none';

export interface SourcePolicy {
  source: string;
  tier?: Tier;
  /** the expected interval between successful snapshots (its RPO), ms; undefined: no expectation yet */
  rpoMs?: number;
  origin: ExpectationOrigin;
  retention?: RetentionPolicy;
  replicas?: SourcePolicyInput['replicas'];
  drill?: SourcePolicyInput['drill'];
}

/** A glob's `*` and `?` (nothing else is special). */
function globMatches(glob: string, name: string): boolean {
  const re = new RegExp(`^${glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`);
  return re.test(name);
}

/** The first entry naming `source` exactly, else the first glob matching it (file order). */
export function matchPolicy(config: KeepdConfig, source: string): SourcePolicyInput | undefined {
  const list = config.sources ?? [];
  return list.find((p) => p.match === source) ?? list.find((p) => globMatches(p.match, source));
}

/** Median gap between consecutive snapshots, ms (needs two). */
export function medianInterval(snaps: Pick<Snapshot, 'time' | 'server_time'>[]): number | undefined {
  const times = snaps.map(recordedTime).sort((a, b) => a - b);
  const gaps = times.slice(1).map((t, i) => t - times[i]).sort((a, b) => a - b);
  if (gaps.length === 0) return undefined;
  const mid = gaps.length >> 1;
  return gaps.length % 2 ? gaps[mid] : (gaps[mid - 1] + gaps[mid]) / 2;
}

/** restic-style keep_* keys as core's policy. */
function retentionOf(r: SourcePolicyInput['retention'], tier: Tier | undefined): RetentionPolicy | undefined {
  if (r === undefined) return undefined;
  if (r === 'tier') return tier ? { ...TIER_RETENTION[tier] } : undefined;
  return {
    last: r.keep_last,
    hourly: r.keep_hourly,
    daily: r.keep_daily,
    weekly: r.keep_weekly,
    monthly: r.keep_monthly,
    yearly: r.keep_yearly,
    within: r.keep_within,
    withinHourly: r.keep_within_hourly,
    withinDaily: r.keep_within_daily,
    withinWeekly: r.keep_within_weekly,
    withinMonthly: r.keep_within_monthly,
    withinYearly: r.keep_within_yearly,
    tags: r.keep_tag,
  };
}

/**
 * A source's expectation, most specific first: the config's rpo/interval;
 * the config's tier, or the tier its newest snapshot was taken with (that
 * tier's RPO); else, for a source nobody configured, once it has two
 * snapshots, 1.5 × the median interval between them; else none.
 */
export function policyFor(config: KeepdConfig, source: string, snaps: Snapshot[]): SourcePolicy {
  const p = matchPolicy(config, source);
  const newest = snaps.reduce<Snapshot | undefined>((n, s) => (!n || recordedTime(s) > recordedTime(n) ? s : n), undefined);
  const snapTier = newest?.tier && newest.tier in TIERS ? (newest.tier as Tier) : undefined;
  const tier = p?.tier ?? snapTier;
  const base = { source, tier, retention: retentionOf(p?.retention, tier), replicas: p?.replicas, drill: p?.drill };
  const explicit = p?.rpo ?? p?.interval;
  if (explicit !== undefined) return { ...base, rpoMs: explicit, origin: 'config' };
  if (tier) return { ...base, rpoMs: TIERS[tier].rpo_s * 1000, origin: 'tier' };
  const median = medianInterval(snaps);
  if (median !== undefined && median > 0) return { ...base, rpoMs: Math.round(median * 1.5), origin: 'observed' };
  return { ...base, origin: 'none' };
}
