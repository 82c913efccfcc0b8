import { Clock, isPgSource, recordedTime, pitrWindow, processClock, Repository, SourceRuns, SourceStatus, TIERS } from '@keep/core';
import { ReplicaRegistry } from '../replicas.js';
import { RunReportStore } from '../run-reports.js';
import { DrillStore } from '../drills.js';
import { drillStatus } from '../control/drill-status.js';
import { replicationDb } from '../sync/pull.js';
import { keepdRepoOptions } from '../data-lock.js';
import { WatchStore } from '../control/watch-store.js';
import { checkSummary } from '../control/status-check.js';
import { replicaLags } from '../control/replica-lag.js';

export type { SourceRuns, SourceStatus } from '@keep/core';

/** `keepd status` on the data directory, which keepd need not be serving. */
export async function runStatus(data: string, clock: Clock = processClock()) {
  const repo = await Repository.open(data, keepdRepoOptions(data, { clock }));
  try {
    return statusReport(repo, clock);
  } finally {
    await repo.close();
  }
}

/**
 * Per source: its newest snapshot and how old it is against its tier's RPO;
 * agents' runs, replicas, replication and the watchdog's states. The JSON of
 * `keepd status --json`, and of GetStatus on the repository keepd serves
 * (`served`: keepd's own registries; a second ReplicaRegistry would take
 * over the repository's commit announcements).
 */
export function statusReport(repo: Repository, clock: Clock, served?: { replicas: ReplicaRegistry; runs: RunReportStore }) {
  const latest = new Map<string, { snap: ReturnType<Repository['snapshots']>[number]; count: number }>();
  for (const s of repo.snapshots()) {
    const cur = latest.get(s.source);
    latest.set(s.source, { snap: s, count: (cur?.count ?? 0) + 1 });
  }
  const now = clock.now();
  const sources: SourceStatus[] = [...latest.values()].map(({ snap, count }) => {
    // keepd's recorded time (snapshot.ts recordedTime): an agent's clock running ahead cannot make an RPO look met
    const age = (now - recordedTime(snap)) / 1000;
    const tier = snap.tier && snap.tier in TIERS ? TIERS[snap.tier as keyof typeof TIERS] : undefined;
    const own = repo.snapshots({ source: snap.source });
    return {
      source: snap.source,
      host: snap.host,
      snapshots: count,
      last_snapshot: snap.id,
      last_time: snap.time,
      age_s: Math.round(age),
      tier: snap.tier ?? null,
      rpo_s: tier ? tier.rpo_s : null,
      rpo_state: tier ? (age <= tier.rpo_s ? 'ok' : 'late') : 'unknown',
      ...(isPgSource(own) ? { pitr: pitrWindow(own) } : {}),
    };
  });
  // Replication as this repository sees it (it is the replica): lag against the strictest RPO of its sources.
  const strictest = Math.min(...sources.map((s) => s.rpo_s ?? Infinity));
  const replication = [...replicationDb(repo).getRange()].map(({ value }) => ({
    ...value,
    rpo_s: Number.isFinite(strictest) ? strictest : null,
    // 'error': the last pull failed; 'late': behind by more than the strictest RPO here.
    state: value.last_error && (!value.last_success || value.last_success < value.last_attempt) ? 'error' : Number.isFinite(strictest) && value.lag_s > strictest ? 'late' : 'ok',
  }));
  // Replicas as the primary sees them, from their reports: lag as the watchdog judges it (control/watchdog.ts).
  const registry = served?.replicas ?? new ReplicaRegistry(repo, clock);
  const lags = new Map(replicaLags(repo, registry, now).map((r) => [r.replica_id, r.lag_ms / 1000]));
  const replicas = registry.list().map((r) => {
    const lag = lags.get(r.replica_id) ?? 0;
    return {
      replica_id: r.replica_id,
      token_id: r.token_id ?? null,
      last_report: new Date(r.last_report).toISOString(),
      newest_time: r.newest_time ?? null,
      lag_s: lag,
      rpo_s: Number.isFinite(strictest) ? strictest : null,
      state: Number.isFinite(strictest) && lag > strictest ? 'late' : 'ok',
    };
  });
  const iso = (ms: number | undefined) => (ms === undefined ? null : new Date(ms).toISOString());
  const runs: SourceRuns[] = (served?.runs ?? new RunReportStore(repo, clock)).list().map((r) => ({
    source: r.source,
    last_result: r.last_result,
    last_job: r.last_job,
    last_run: new Date(r.last_run_ms).toISOString(),
    consecutive_failures: r.consecutive_failures,
    last_failure: iso(r.last_failure_ms),
    last_success: iso(r.last_success_ms),
    last_error_class: r.last_error_class ?? null,
    runs_success: r.runs_success,
    runs_failure: r.runs_failure,
  }));
  const watch = new WatchStore(repo);
  const drills = drillStatus(repo, new DrillStore(repo, clock), watch.held());
  const meta = watch.lastEvaluation();
  const watchdog = {
    evaluated_at: iso(meta?.evaluated_ms),
    interval_s: meta ? meta.interval_ms / 1000 : null,
    check: checkSummary(watch.held(), meta, now),
    states: watch.held().map(({ candidate: _c, candidate_count: _n, ...h }) => ({ ...h, since: new Date(h.since_ms).toISOString() })),
    transitions: watch.recentTransitions(20).map((t) => ({ ...t, at: new Date(t.at_ms).toISOString() })),
    maintenance: watch.allRuns().slice(-20),
  };
  return { repository: repo.config.id, snapshots: repo.snapshots().length, blobs: repo.blobCount(), packs: repo.packCount(), sources, runs, drills, replicas, replication, watchdog };
}

export type StatusReport = ReturnType<typeof statusReport>;
