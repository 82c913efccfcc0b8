import { Clock, Repository, spaceOf } from '@keep/core';
import { alertsReport } from '../control/alerts.js';
import { WatchStore } from '../control/watch-store.js';
import { AuditFilter, listAudit } from '../audit/list.js';
import { statusReport, StatusReport } from '../commands/status.js';
import { RunReportStore } from '../run-reports.js';
import { DrillStore } from '../drills.js';
import type { ReplicaRegistry } from '../replicas.js';
import { lagHistory } from '../control/replica-lag.js';
import type { StorageSpace } from '../storage-space.js';

/**
 * What the dashboard shows, from the code `keepd status`, `keepd alerts` and
 * `keepd audit` run (statusReport, alertsReport, listAudit) over keepd's open
 * repository: no second computation of a state. Only the arrangement per
 * page is here. Drills and the DR report add their figures beside these.
 */
export interface FigureDeps {
  repo: Repository;
  data: string;
  clock: Clock;
  space: StorageSpace;
  /** keepd's own registries (a second ReplicaRegistry would take over the repository's commit announcements) */
  served: { replicas: ReplicaRegistry; runs: RunReportStore };
}

/** One row of the fleet overview. */
export interface FleetRow {
  source: StatusReport['sources'][number];
  /** the watchdog's held state of the source (late, missed, failing...), as alerts see it */
  watch: { state: string; severity: number } | null;
  run: StatusReport['runs'][number] | null;
  /** a new snapshot is due by then (last one + the tier's RPO) */
  next_due: string | null;
}

export function fleet(d: FigureDeps) {
  const status = statusReport(d.repo, d.clock, d.served);
  const rows: FleetRow[] = status.sources.map((s) => {
    const held = status.watchdog.states.find((h) => h.kind === 'source' && h.name === s.source);
    return {
      source: s,
      watch: held ? { state: held.state, severity: held.severity } : null,
      run: status.runs.find((r) => r.source === s.source) ?? null,
      next_due: s.rpo_s === null ? null : new Date(Date.parse(s.last_time) + s.rpo_s * 1000).toISOString(),
    };
  });
  const alerts = alertsReport(d.repo);
  return { status, rows, active_alerts: alerts.active.length };
}

/** A source's page: its snapshots over time, its runs and failures. */
export function sourceFigures(d: FigureDeps, source: string) {
  const status = statusReport(d.repo, d.clock, d.served);
  const row = status.sources.find((s) => s.source === source);
  if (!row) return undefined;
  const snapshots = d.repo.snapshots({ source }).map((s) => ({
    id: s.id,
    time: s.time,
    bytes: s.stats.bytes,
    bytes_sent: s.stats.bytes_sent,
    files: s.stats.files,
    // logical bytes per stored byte this backup added: the dedup and compression it got
    dedup_ratio: s.stats.bytes_sent > 0 ? Math.round((s.stats.bytes / s.stats.bytes_sent) * 10) / 10 : null,
    tags: s.tags,
  }));
  const reports = d.served.runs.recent(source);
  const failures = reports
    .filter((r) => r.result === 'failure')
    .map((r) => ({ at: new Date(r.received_ms).toISOString(), job: r.job, kind: r.kind, error_class: r.error_class ?? null, attempt: r.attempt }))
    .reverse();
  // drills: the row keepd status shows, and the history newest first
  const drill = status.drills.find((x) => x.source === source) ?? null;
  const drills = new DrillStore(d.repo, d.clock).history(source).reverse();
  return { source: row, run: status.runs.find((r) => r.source === source) ?? null, snapshots, failures, runs_kept: reports.length, drill, drills };
}

/** Lag charts cover this much of the reports kept (replica-history.ts). */
export const LAG_CHART_MS = 7 * 86_400_000;

/** Replicas: keepd status's rows, each with its lag over the last week from its stored reports (the same lagAt as the row's). */
export function replicaFigures(d: FigureDeps) {
  const status = statusReport(d.repo, d.clock, d.served);
  const now = d.clock.now();
  const snaps = d.repo.snapshots();
  const replicas = status.replicas.map((r) => ({ ...r, lag_history: lagHistory(snaps, d.served.replicas.history.of(r.replica_id), now - LAG_CHART_MS, now) }));
  return { replicas, replication: status.replication };
}

/** Points a usage chart carries at most: a week of minutely samples thinned, the newest always kept (the page is polled). */
const CHART_POINTS = 1000;
const thin = <T>(xs: T[], max: number): T[] => (xs.length <= max ? xs : xs.filter((_, i) => i % Math.ceil(xs.length / max) === 0 || i === xs.length - 1));

export function storageFigures(d: FigureDeps) {
  const { free, total } = spaceOf(d.data);
  const watch = new WatchStore(d.repo);
  const held = watch.held().find((h) => h.kind === 'storage');
  const days = held?.detail.days_to_full;
  const growth = held?.detail.growth_bytes_per_day;
  const samples = thin(watch.usageSamples(), CHART_POINTS);
  return {
    total,
    free,
    used: total - free,
    reserve: d.space.reserveOf(total),
    blobs: d.repo.blobCount(),
    packs: d.repo.packCount(),
    // where the packs are (a bucket: the disk figures above are then the data directory's index, state and tmp/)
    packs_in: d.repo.storage.description,
    stored_bytes: d.repo.indexedPackBytes(),
    state: held?.state ?? null,
    // the watchdog's figures (the same as keep_storage_days_to_full); null: not growing, or not judged yet
    days_to_full: typeof days === 'number' ? days : null,
    growth_bytes_per_day: typeof growth === 'number' ? growth : null,
    // the samples the watchdog judged growth from (a week), and the trend it saw: a line from the oldest sample at that growth
    usage: samples,
    trend: typeof growth === 'number' && samples.length ? samples.map((x) => Math.round(samples[0].used + (growth * (x.at_ms - samples[0].at_ms)) / 86_400_000)) : [],
    prunes: watch.allRuns().filter((r) => r.task === 'prune').reverse(),
  };
}

export const alertFigures = (d: FigureDeps) => alertsReport(d.repo);

/** Newest first, at most `limit`. */
export function auditFigures(d: FigureDeps, f: AuditFilter, limit = 500) {
  const all = listAudit(d.data, f);
  return { total: all.length, records: all.slice(-limit).reverse() };
}

export const maintenanceFigures = (d: FigureDeps) => ({ runs: new WatchStore(d.repo).allRuns().reverse() });
