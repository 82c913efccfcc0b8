import { defaultDrillIntervalMs, PG_WAL_TAG, recordedTime, Snapshot, TIERS } from '@keep/core';
import type { StoredDrill } from '../drills.js';
import type { SourcePolicy } from './policies.js';

/**
 * What a source's drill history says now, computed from the stored drill
 * events (drills.ts) and the source's snapshots; nothing here is stored.
 *
 * RTO estimate (how it extrapolates): the newest successful drill measured
 * a start-up cost (connect, unlock, choose the snapshot: setup_ms) and a
 * transfer rate (its bytes over the rest of its wall time). The estimate for
 * the source today is that start-up cost plus the latest snapshot's size at
 * that rate. A drill of an empty snapshot measured only start-up: its whole
 * time is the estimate. A --no-write drill never paid for the disk writes,
 * so its estimate is a lower bound (`mode` says which kind measured it).
 * A PostgreSQL drill's recovery ends when the server is promoted: its wall
 * time is `promoted_ms` (validation and teardown after it are not part of
 * a recovery), and the size it extrapolates to is the latest base backup's
 * (a WAL segment is a snapshot of the source too, but not what a restore
 * starts from).
 */
export interface DrillView {
  source: string;
  drills: number;
  failures: number;
  last?: StoredDrill;
  last_success?: StoredDrill;
  /** bytes/s of the newest successful drill's transfer */
  rate_bytes_s: number | null;
  /** the latest snapshot's size, the figure the estimate extrapolates to */
  current_bytes: number | null;
  rto_estimate_ms: number | null;
  rto_target_ms: number | null;
  interval_ms: number;
  /** whether the policy asks for drills explicitly (then a source never drilled is overdue too) */
  configured: boolean;
}

/** The part of a drill a real recovery would take, ms: to a promoted server for PostgreSQL, the whole drill otherwise. */
export function recoveryWallMs(d: StoredDrill): number {
  return d.kind === 'postgres' && d.promoted_ms !== undefined ? d.promoted_ms : d.duration_ms;
}

/** Bytes/s of a drill's transfer (its recovery time less its start-up). */
export function drillRate(d: StoredDrill): number {
  return (d.bytes * 1000) / Math.max(1, recoveryWallMs(d) - d.setup_ms);
}

/** The RTO estimate for `bytes` from drill `d` (the rule above), ms. */
export function rtoEstimateMs(d: StoredDrill, bytes: number): number {
  if (d.bytes === 0) return recoveryWallMs(d);
  return Math.round(d.setup_ms + (bytes * 1000) / drillRate(d));
}

export function drillView(policy: SourcePolicy, history: StoredDrill[], snaps: Snapshot[]): DrillView {
  const last = history.at(-1);
  const lastSuccess = history.filter((d) => d.result === 'success').at(-1);
  const newest = snaps.filter((s) => !s.tags.includes(PG_WAL_TAG)).reduce<Snapshot | undefined>((n, s) => (!n || recordedTime(s) > recordedTime(n) ? s : n), undefined);
  const current = newest?.stats.bytes ?? lastSuccess?.bytes ?? null;
  const target = policy.drill?.rto ?? (policy.tier ? TIERS[policy.tier].rto_s * 1000 : undefined);
  return {
    source: policy.source,
    drills: history.length,
    failures: history.filter((d) => d.result === 'failure').length,
    last,
    last_success: lastSuccess,
    rate_bytes_s: lastSuccess ? Math.round(drillRate(lastSuccess)) : null,
    current_bytes: current,
    rto_estimate_ms: lastSuccess && current !== null ? rtoEstimateMs(lastSuccess, current) : null,
    rto_target_ms: target ?? null,
    interval_ms: policy.drill?.interval ?? defaultDrillIntervalMs(policy.tier),
    configured: policy.drill !== undefined,
  };
}
