import { recordedTime, Repository, Snapshot } from '@keep/core';
import type { ReplicaRegistry } from '../replicas.js';
import type { ReplicaReport } from '../replica-history.js';

/**
 * A replica's lag at `at`: how long the oldest snapshot it lacked then (one
 * recorded here by `at`, newer than the newest it had reported) had been
 * here, by the time this repository recorded it: 0 when it held everything,
 * and growing while it stops syncing, so a replica that falls behind crosses
 * the RPO even when no further backup arrives. The one definition for now
 * (watchdog, status, metrics) and the past (the dashboard's chart).
 */
export function lagAt(snaps: readonly Snapshot[], newestTime: string | undefined, at: number): number {
  const lacking = snaps.map((s) => ({ s, t: recordedTime(s) })).filter(({ s, t }) => t <= at && lacks(s, newestTime));
  return lacking.length ? Math.max(0, at - Math.min(...lacking.map((x) => x.t))) : 0;
}

/** Does a replica whose newest snapshot has `newestTime` lack `s`? */
const lacks = (s: Snapshot, newestTime: string | undefined) => !newestTime || s.time > newestTime;

/** Replicas as the primary sees them now. */
export function replicaLags(repo: Repository, replicas: ReplicaRegistry, now: number): { replica_id: string; lag_ms: number }[] {
  const snaps = repo.snapshots();
  return replicas.list().map((r) => ({ replica_id: r.replica_id, lag_ms: lagAt(snaps, r.newest_time, now) }));
}

/** Points of a lag chart at most (the newest kept). */
const MAX_POINTS = 2000;

/**
 * A replica's lag over [from, now] from its stored reports: a point where
 * each snapshot arrived, just before and at each report (lag drops there),
 * and now; between them lag grows linearly or stays 0, so lines between the
 * points draw it exactly. Nothing before its first report.
 */
export function lagHistory(snaps: readonly Snapshot[], reports: readonly ReplicaReport[], from: number, now: number): { at_ms: number; lag_ms: number }[] {
  if (!reports.length) return [];
  const start = Math.max(from, reports[0].at_ms);
  const times = new Set<number>([start, now]);
  for (const r of reports) if (r.at_ms > start && r.at_ms <= now) times.add(r.at_ms - 1).add(r.at_ms);
  for (const s of snaps) {
    const t = recordedTime(s);
    if (t > start && t <= now) times.add(t);
  }
  // the snapshots each holding lacks, found once per report (a page polls this): lagAt then looks at those alone
  const lacking = new Map<string, Snapshot[]>();
  const lackingFor = (newest: string) => lacking.get(newest) ?? lacking.set(newest, snaps.filter((s) => lacks(s, newest))).get(newest)!;
  let held = 0;
  return [...times]
    .sort((a, b) => a - b)
    .slice(-MAX_POINTS)
    .map((t) => {
      while (held + 1 < reports.length && reports[held + 1].at_ms <= t) held++;
      const newest = reports[held].newest_time;
      return { at_ms: t, lag_ms: lagAt(lackingFor(newest), newest, t) };
    });
}
