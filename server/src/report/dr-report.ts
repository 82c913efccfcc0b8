import { Clock, recordedTime, Repository } from '@keep/core';
import { DrillStore } from '../drills.js';
import { drillStatus } from '../control/drill-status.js';
import { recoveryWallMs } from '../control/drill-view.js';
import { policyFor } from '../control/policies.js';
import { WatchStore } from '../control/watch-store.js';
import { RunReportStore } from '../run-reports.js';
import { rpoCompliance, RpoCompliance, stateShare } from './rpo-compliance.js';

/**
 * `keepd report`: the disaster-recovery KPIs per source over a window,
 * computed when asked from what keepd recorded (snapshots with keepd's
 * time, agents' run reports, drill reports, the watchdog's transitions and
 * storage samples); nothing is counted ahead or configured. Like `keepd
 * status` it reads no keepd.yaml: RPO and RTO targets come from the tiers
 * the snapshots carry, or from the watchdog's held judgement.
 */

export const REPORT_METHODS = {
  backups: 'succeeded: distinct snapshots recorded in the window, with successful run reports received in it (a forgotten snapshot still counts through its report); attempted: succeeded + failed run reports received in the window',
  rpo: "at each instant the source's age is the time since its newest snapshot (keepd's recorded time); the share of the window (from the first snapshot, if later) during which that age was within the RPO",
  drills: "drill reports received in the window; the RTO estimate and target are keepd status's (the last successful drill's start-up + the latest snapshot's bytes at its measured rate)",
  replicas: "the share of the window each replica's lag was within the RPO, from the watchdog's recorded transitions (time before the first is not measured)",
  storage: 'per source: new data stored (the bytes each snapshot added) and size at the first and last snapshot in the window; repository: the used-bytes samples the watchdog keeps (a week, one a minute) at the window\'s ends',
};

export interface SourceReport {
  source: string;
  tier: string | null;
  backups: { attempted: number; succeeded: number; failed: number; success_rate: number | null; basis: 'run reports and snapshots' | 'snapshots' };
  rpo: { rpo_s: number | null; origin: string } & RpoCompliance;
  drills: { count: number; failures: number; longest_s: number | null; within_target: number | null; last_result: string | null; rto_estimate_s: number | null; rto_target_s: number | null; rto_met: boolean | null };
  storage: { new_bytes: number; size_first: number | null; size_last: number | null };
}

export interface DrReport {
  window: { start: string; end: string; start_ms: number; end_ms: number };
  sources: SourceReport[];
  replicas: ({ replica: string } & RpoCompliance)[];
  storage: { used_first: number | null; used_last: number | null; growth_bytes_per_day: number | null; samples: number };
  methods: typeof REPORT_METHODS;
}

const rate = (ok: number, all: number) => (all > 0 ? Math.round((ok / all) * 10_000) / 10_000 : null);

export function drReport(repo: Repository, clock: Clock, sinceMs: number): DrReport {
  const end = clock.now();
  const start = Math.min(sinceMs, end);
  const inWindow = (t: number) => t >= start && t <= end;
  const runs = new RunReportStore(repo, clock);
  const drills = new DrillStore(repo, clock);
  const watch = new WatchStore(repo);
  const drillRows = drillStatus(repo, drills, watch.held());
  const names = new Set([...repo.snapshots().map((s) => s.source), ...runs.list().map((r) => r.source), ...drills.sources()]);
  const sources = [...names].sort().map((source): SourceReport => {
    const snaps = repo.snapshots({ source }).sort((a, b) => recordedTime(a) - recordedTime(b));
    const policy = policyFor({}, source, snaps);
    const reports = runs.recent(source).filter((r) => inWindow(r.received_ms));
    const snapsIn = snaps.filter((s) => inWindow(recordedTime(s)));
    const ok = new Set([...snapsIn.map((s) => s.id), ...reports.filter((r) => r.result === 'success').map((r) => r.snapshot ?? r.id)]);
    const failed = reports.filter((r) => r.result === 'failure').length;
    const history = drills.history(source).filter((d) => inWindow(d.received_ms));
    const row = drillRows.find((r) => r.source === source);
    const target = row?.rto_target_s ?? null;
    const longest = history.length ? Math.max(...history.map(recoveryWallMs)) / 1000 : null;
    return {
      source,
      tier: policy.tier ?? null,
      backups: { attempted: ok.size + failed, succeeded: ok.size, failed, success_rate: rate(ok.size, ok.size + failed), basis: reports.length ? 'run reports and snapshots' : 'snapshots' },
      rpo: {
        rpo_s: policy.rpoMs === undefined ? null : policy.rpoMs / 1000,
        origin: policy.origin,
        ...(policy.rpoMs === undefined ? { within_ms: 0, measured_ms: 0, share: null } : rpoCompliance(snaps.map(recordedTime), policy.rpoMs, start, end)),
      },
      drills: {
        count: history.length,
        failures: history.filter((d) => d.result === 'failure').length,
        longest_s: longest,
        within_target: target === null ? null : history.filter((d) => d.result === 'success' && recoveryWallMs(d) <= target * 1000).length,
        last_result: history.at(-1)?.result ?? null,
        rto_estimate_s: row?.rto_estimate_s ?? null,
        rto_target_s: target,
        rto_met: row?.rto_estimate_s == null || target === null ? null : row.rto_estimate_s <= target,
      },
      storage: { new_bytes: snapsIn.reduce((n, s) => n + s.stats.bytes_sent, 0), size_first: snapsIn[0]?.stats.bytes ?? null, size_last: snapsIn.at(-1)?.stats.bytes ?? null },
    };
  });
  const transitions = [...watch.transitions.getRange()].map(({ value }) => value).filter((t) => t.kind === 'replica');
  const replicas = [...new Set(transitions.map((t) => t.name))].sort().map((replica) => ({ replica, ...stateShare(transitions.filter((t) => t.name === replica), (s) => s === 'ok', start, end) }));
  const samples = watch.usageSamples().map((s) => ({ at: s.at_ms, used: s.used })).filter((s) => inWindow(s.at));
  const first = samples[0];
  const last = samples.at(-1);
  const span = first && last ? last.at - first.at : 0;
  return {
    window: { start: new Date(start).toISOString(), end: new Date(end).toISOString(), start_ms: start, end_ms: end },
    sources,
    replicas,
    storage: { used_first: first?.used ?? null, used_last: last?.used ?? null, growth_bytes_per_day: span > 0 ? Math.round(((last!.used - first!.used) / span) * 86_400_000) : null, samples: samples.length },
    methods: REPORT_METHODS,
  };
}
