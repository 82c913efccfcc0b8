/**
 * What the watchdog judges, as pure functions of stored facts (no clock, no
 * I/O) so a restart re-derives the same states. Severity follows the
 * monitoring-plugin scale: 0 OK, 1 WARNING, 2 CRITICAL.
 */
import type { DrillView } from './drill-view.js';

export type ConditionKind = 'source' | 'replica' | 'storage' | 'maintenance' | 'keepd' | 'drill';

export interface Condition {
  kind: ConditionKind;
  name: string;
  state: string;
  severity: 0 | 1 | 2;
  /** numbers behind the state (age, RPO, lag, ...) for status and alerts */
  detail: Record<string, number | string | null>;
}

/**
 * A source's age against its RPO: ok up to the RPO; late past it; missed
 * past twice the RPO (a whole further backup interval went by without a
 * snapshot). No expectation yet: unknown (not an alarm).
 */
export function ageState(ageMs: number, rpoMs: number | undefined): { state: 'ok' | 'late' | 'missed' | 'unknown'; severity: 0 | 1 | 2 } {
  if (rpoMs === undefined) return { state: 'unknown', severity: 0 };
  if (ageMs <= rpoMs) return { state: 'ok', severity: 0 };
  if (ageMs <= 2 * rpoMs) return { state: 'late', severity: 1 };
  return { state: 'missed', severity: 2 };
}

/** Failed runs: `threshold` consecutive failures (agents' reports) make a source failing, critical. */
export function sourceCondition(o: { source: string; ageMs: number | undefined; rpoMs: number | undefined; origin: string; consecutiveFailures: number; failureRate: number | null; failuresThreshold: number }): Condition {
  const age = o.ageMs === undefined ? { state: 'unknown' as const, severity: 0 as const } : ageState(o.ageMs, o.rpoMs);
  const failing = o.consecutiveFailures >= o.failuresThreshold;
  // missed outranks failing (both critical; missed says more), failing outranks late
  const pick = age.state === 'missed' ? age : failing ? { state: 'failing', severity: 2 as const } : age;
  return {
    kind: 'source',
    name: o.source,
    state: pick.state,
    severity: pick.severity,
    detail: { age_s: o.ageMs === undefined ? null : Math.round(o.ageMs / 1000), rpo_s: o.rpoMs === undefined ? null : o.rpoMs / 1000, expectation: o.origin, consecutive_failures: o.consecutiveFailures, failure_rate: o.failureRate },
  };
}

/** A replica behind the primary by more than `rpoMs` (the strictest RPO of the sources) is lagging. */
export function replicaCondition(replica: string, lagMs: number, rpoMs: number | undefined): Condition {
  const lagging = rpoMs !== undefined && lagMs > rpoMs;
  return { kind: 'replica', name: replica, state: lagging ? 'lagging' : 'ok', severity: lagging ? 1 : 0, detail: { lag_s: lagMs / 1000, rpo_s: rpoMs === undefined ? null : rpoMs / 1000 } };
}

/** Below keepd's reserve: full (critical); full within `warnDays` at the observed growth: filling (warning). */
export function storageCondition(o: { free: number; reserve: number; bytesPerMs: number; warnDays: number }): Condition {
  const days = daysToFull(o.free, o.bytesPerMs);
  const state = o.free < o.reserve ? 'full' : days < o.warnDays ? 'filling' : 'ok';
  return { kind: 'storage', name: 'data', state, severity: state === 'full' ? 2 : state === 'filling' ? 1 : 0, detail: { free_bytes: o.free, reserve_bytes: o.reserve, days_to_full: Number.isFinite(days) ? Math.round(days * 10) / 10 : null, growth_bytes_per_day: Math.round(o.bytesPerMs * 86_400_000) } };
}

/** A maintenance task whose last run failed stays critical until a run succeeds. */
export function maintenanceCondition(task: string, last: { outcome: 'success' | 'failure'; end_ms: number; error?: string } | undefined): Condition {
  const failed = last?.outcome === 'failure';
  return { kind: 'maintenance', name: task, state: !last ? 'pending' : failed ? 'failed' : 'ok', severity: failed ? 2 : 0, detail: { last_run_ms: last?.end_ms ?? null, error: last?.error ?? null } };
}

/** Days until `free` is used up at `bytesPerMs`; Infinity when usage is not growing. */
export function daysToFull(free: number, bytesPerMs: number): number {
  return bytesPerMs > 0 ? free / bytesPerMs / 86_400_000 : Infinity;
}

/**
 * A source's restore drills (drill-view.ts): the last drill failed (critical,
 * until one succeeds); the RTO estimate is above its target (warning);
 * no drill within the interval since the last one, or, where the policy asks
 * for drills, since the source's first snapshot (warning); else ok. A source
 * whose policy asks for drills and has none yet is pending until its first
 * snapshot is older than the interval (the watchdog judges only sources
 * with a drill policy or a drill).
 */
export function drillCondition(v: DrillView, now: number, firstSnapshotMs: number | undefined): Condition {
  const since = v.last ? v.last.received_ms : v.configured ? firstSnapshotMs : undefined;
  const overdue = since !== undefined && now - since > v.interval_ms;
  const rtoMissed = v.rto_estimate_ms !== null && v.rto_target_ms !== null && v.rto_estimate_ms > v.rto_target_ms;
  const [state, severity]: [string, 0 | 1 | 2] =
    v.last?.result === 'failure' ? ['failed', 2] : rtoMissed ? ['rto_exceeded', 1] : overdue ? ['overdue', 1] : v.last ? ['ok', 0] : ['pending', 0];
  const s = (ms: number | null) => (ms === null ? null : Math.round(ms) / 1000);
  return {
    kind: 'drill',
    name: v.source,
    state,
    severity,
    detail: {
      last_drill_ms: v.last?.received_ms ?? null,
      last_result: v.last?.result ?? null,
      last_error_class: v.last?.error_class ?? null,
      drill_s: s(v.last?.duration_ms ?? null),
      rto_estimate_s: s(v.rto_estimate_ms),
      rto_target_s: s(v.rto_target_ms),
      interval_s: v.interval_ms / 1000,
    },
  };
}
