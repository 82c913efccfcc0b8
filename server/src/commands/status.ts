import { Clock, isPgSource, recordedTime, PitrWindow, pitrWindow, processClock, Repository, TIERS } from '@keep/core';
import { ReplicaRegistry } from '../replicas.js';
import { RunReportStore } from '../run-reports.js';
import { DrillStore } from '../drills.js';
import { drillStatus } from '../control/drill-status.js';
import { replicationDb } from '../sync/pull.js';
import { keepdRepoOptions } from '../data-lock.js';
import { WatchStore } from '../control/watch-store.js';
import { checkSummary } from '../control/status-check.js';

export interface SourceStatus {
  source: string;
  host: string;
  snapshots: number;
  last_snapshot: string;
  last_time: string;
  age_s: number;
  tier: string | null;
  /** the tier's RPO; null when the source has no tier */
  rpo_s: number | null;
  /** 'ok' | 'late' (older than its RPO) | 'unknown' (no tier) */
  rpo_state: 'ok' | 'late' | 'unknown';
  /** PostgreSQL sources: the point-in-time recovery window (oldest base backup .. newest WAL push) */
  pitr?: PitrWindow;
}

/** Per source, from agents' run reports (ReportRuns); times are keepd's receive times. */
export interface SourceRuns {
  source: string;
  last_result: 'success' | 'failure';
  last_job: string;
  last_run: string;
  consecutive_failures: number;
  last_failure: string | null;
  last_success: string | null;
  last_error_class: string | null;
  runs_success: number;
  runs_failure: number;
}

/** Per source: its newest snapshot and how old it is against its tier's RPO. */
export async function runStatus(data: string, clock: Clock = processClock()) {
  const repo = await Repository.open(data, keepdRepoOptions(data, { clock }));
  try {
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
    // Replicas as the primary sees them, from their reports: lag = our newest snapshot - theirs.
    const newest = repo.snapshots().reduce((t, x) => (x.time > t ? x.time : t), '');
    const replicas = new ReplicaRegistry(repo, clock).list().map((r) => {
      const lag = newest && (!r.newest_time || r.newest_time < newest) ? (Date.parse(newest) - (r.newest_time ? Date.parse(r.newest_time) : 0)) / 1000 : 0;
      return {
        replica_id: r.replica_id,
        token_id: r.token_id ?? null,
        last_report: new Date(r.last_report).toISOString(),
        newest_time: r.newest_time ?? null,
        lag_s: lag,
        state: Number.isFinite(strictest) && lag > strictest ? 'late' : 'ok',
      };
    });
    const iso = (ms: number | undefined) => (ms === undefined ? null : new Date(ms).toISOString());
    const runs: SourceRuns[] = new RunReportStore(repo, clock).list().map((r) => ({
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
  } finally {
    await repo.close();
  }
}
