import { Clock, recordedTime, Repository, spaceOf } from '@keep/core';
import type { Metrics, Sample } from '../metrics.js';
import type { ReplicaRegistry } from '../replicas.js';
import type { RunReportStore } from '../run-reports.js';
import { alertsTable } from './alerts.js';
import { SEVERITY_NAMES } from './alert-payloads.js';
import { daysToFull } from './evaluate.js';
import type { Watchdog } from './watchdog.js';
import { replicaLags } from './replica-lag.js';
import type { WatchStore } from './watch-store.js';

/** Every state a source can hold (keep_source_state has one series per state, 1 for the current). */
export const SOURCE_STATES = ['ok', 'late', 'missed', 'failing', 'unknown'] as const;

/**
 * The control plane's metrics, each read from state.mdb and the repository
 * at scrape time: counters come from the run summaries' totals, so a keepd
 * restart does not reset them.
 */
export function registerControlMetrics(m: Metrics, o: { repo: Repository; runs: RunReportStore; replicas: ReplicaRegistry; watchdog: Watchdog; store: WatchStore; data: string; clock: Clock }): void {
  m.family('keep_source_last_success_timestamp_seconds', 'Server time of the newest snapshot of each source', 'gauge', () => {
    const newest = new Map<string, number>();
    for (const s of o.repo.snapshots()) newest.set(s.source, Math.max(newest.get(s.source) ?? 0, recordedTime(s)));
    return [...newest].map(([source, t]) => ({ labels: { source }, value: t / 1000 }));
  });
  m.family('keep_source_rpo_seconds', 'Expected interval between successful snapshots (config, tier, or 1.5 x the observed median)', 'gauge', () =>
    o.watchdog.policies().flatMap((p) => (p.rpoMs === undefined ? [] : [{ labels: { source: p.source }, value: p.rpoMs / 1000 }])),
  );
  m.family('keep_source_state', "The watchdog's state of each source: 1 for the current one", 'gauge', () =>
    o.store.held().filter((h) => h.kind === 'source').flatMap((h) => SOURCE_STATES.map((state): Sample => ({ labels: { source: h.name, state }, value: h.state === state ? 1 : 0 }))),
  );
  m.family('keep_backup_runs_total', 'Backup runs agents reported, by result', 'counter', () =>
    o.runs.list().flatMap((r) => [
      { labels: { source: r.source, result: 'success' }, value: r.runs_success },
      { labels: { source: r.source, result: 'failure' }, value: r.runs_failure },
    ]),
  );
  m.family('keep_replica_lag_seconds', "How long the oldest snapshot each replica lacks has been here (0: it holds them all)", 'gauge', () =>
    replicaLags(o.repo, o.replicas, o.clock.now()).map((r) => ({ labels: { replica: r.replica_id }, value: r.lag_ms / 1000 })),
  );
  m.gauge('keep_storage_days_to_full', 'Days until the data directory is full at the growth observed over the last week (+Inf: not growing)', () => {
    const held = o.store.held().find((h) => h.kind === 'storage');
    const days = held?.detail.days_to_full;
    return typeof days === 'number' ? days : held ? Infinity : daysToFull(spaceOf(o.data).free, 0);
  });
  m.gauge('keep_watchdog_last_evaluation_timestamp_seconds', "When keepd's watchdog last evaluated", () => (o.store.lastEvaluation()?.evaluated_ms ?? 0) / 1000);
  m.family('keep_maintenance_last_run_timestamp_seconds', 'End of the last run of each maintenance task, by outcome', 'gauge', () => {
    const last = new Map<string, Sample>();
    for (const r of o.store.allRuns()) last.set(r.task, { labels: { task: r.task, outcome: r.outcome }, value: r.end_ms / 1000 });
    return [...last.values()];
  });
  m.family('keep_alerts_active', 'Alerts firing now, by severity (sum for all)', 'gauge', () => {
    const firing = [...alertsTable(o.repo).getRange()].filter((x) => x.value.state === 'firing');
    return (['warning', 'critical'] as const).map((severity) => ({ labels: { severity }, value: firing.filter((x) => SEVERITY_NAMES[x.value.severity] === severity).length }));
  });
  registerDrillMetrics(m, o.watchdog);
  registerProcessMetrics(m);
}

/** Per source, from the drill events (drill-view.ts): the last drill, its time, the RTO estimate and its target. */
function registerDrillMetrics(m: Metrics, watchdog: Watchdog): void {
  const views = () => watchdog.drillViews();
  m.family('keep_source_last_drill_timestamp_seconds', 'Server time of the last restore drill of each source, by result', 'gauge', () =>
    views().flatMap((v) => (v.last ? [{ labels: { source: v.source, result: v.last.result }, value: v.last.received_ms / 1000 }] : [])),
  );
  m.family('keep_source_drill_seconds', 'Measured wall time of the last restore drill of each source', 'gauge', () =>
    views().flatMap((v) => (v.last ? [{ labels: { source: v.source, mode: v.last.mode }, value: v.last.duration_ms / 1000 }] : [])),
  );
  m.family('keep_source_rto_estimate_seconds', "RTO estimate: the last successful drill's start-up time plus the latest snapshot's size at its measured rate", 'gauge', () =>
    views().flatMap((v) => (v.rto_estimate_ms === null ? [] : [{ labels: { source: v.source }, value: v.rto_estimate_ms / 1000 }])),
  );
  m.family('keep_source_rto_target_seconds', "Each source's RTO target (policy drill.rto, else its tier's)", 'gauge', () =>
    views().flatMap((v) => (v.rto_target_ms === null ? [] : [{ labels: { source: v.source }, value: v.rto_target_ms / 1000 }])),
  );
}

/** The usual process_* and nodejs_* gauges (prom-client's names), without the dependency. */
export function registerProcessMetrics(m: Metrics): void {
  const started = Date.now() - process.uptime() * 1000;
  m.gauge('process_cpu_seconds_total', 'User and system CPU time spent in seconds', () => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1e6;
  });
  m.gauge('process_resident_memory_bytes', 'Resident memory size in bytes', () => process.memoryUsage.rss());
  m.gauge('process_start_time_seconds', 'Start time of the process since the Unix epoch in seconds', () => Math.round(started / 1000));
  m.gauge('nodejs_heap_size_used_bytes', 'Process heap size used from Node.js in bytes', () => process.memoryUsage().heapUsed);
}
