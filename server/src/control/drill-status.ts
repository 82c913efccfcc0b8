import { Repository } from '@keep/core';
import type { DrillStore } from '../drills.js';
import { drillView, DrillView } from './drill-view.js';
import { policyFor } from './policies.js';
import type { HeldState } from './watch-store.js';

/** `keepd status`'s drill section, per source with drills: the last drill, the measured rate and the RTO estimate against its target. */
export interface SourceDrills {
  source: string;
  /** the watchdog's held state (failed, rto_exceeded, overdue, ok, pending); null before it evaluated */
  state: string | null;
  drills: number;
  failures: number;
  last_drill: string | null;
  last_result: 'success' | 'failure' | null;
  /** write: restored into a scratch directory; read: --no-write */
  last_mode: string | null;
  last_snapshot: string | null;
  last_error_class: string | null;
  drill_s: number | null;
  rate_bytes_s: number | null;
  current_bytes: number | null;
  rto_estimate_s: number | null;
  rto_target_s: number | null;
  /** how the estimate extrapolates */
  rto_method: string;
}

export const RTO_METHOD = "the last successful drill's start-up time + the latest snapshot's bytes at that drill's measured bytes/s";

/**
 * Run in `keepd status`'s own process, which reads no keepd.yaml: the figures
 * come from the drill events and the snapshots' tiers; where the watchdog
 * (which holds the config) judged the source, its target and state win.
 */
export function drillStatus(repo: Repository, drills: DrillStore, held: HeldState[]): SourceDrills[] {
  const s = (ms: number | null | undefined) => (ms === null || ms === undefined ? null : Math.round(ms) / 1000);
  return drills.sources().map((source) => {
    const snaps = repo.snapshots({ source });
    const v: DrillView = drillView(policyFor({}, source, snaps), drills.history(source), snaps);
    const h = held.find((x) => x.kind === 'drill' && x.name === source);
    const target = typeof h?.detail.rto_target_s === 'number' ? h.detail.rto_target_s : s(v.rto_target_ms);
    return {
      source,
      state: h?.state ?? null,
      drills: v.drills,
      failures: v.failures,
      last_drill: v.last ? new Date(v.last.received_ms).toISOString() : null,
      last_result: v.last?.result ?? null,
      last_mode: v.last?.mode ?? null,
      last_snapshot: v.last?.snapshot ?? null,
      last_error_class: v.last?.error_class ?? null,
      drill_s: s(v.last?.duration_ms),
      rate_bytes_s: v.rate_bytes_s,
      current_bytes: v.current_bytes,
      rto_estimate_s: s(v.rto_estimate_ms),
      rto_target_s: target,
      rto_method: RTO_METHOD,
    };
  });
}
