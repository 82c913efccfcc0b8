import { Clock, Database, Repository, STATE_TABLES } from '@keep/core';

/** A change in what a replica reported holding, at keepd's time. */
export interface ReplicaReport {
  at_ms: number;
  /** the time of the newest snapshot it holds (as the replica reported it) */
  newest_time: string;
}

/** Reports are kept this long: the dashboard charts a week, the report may look back a month. */
export const REPLICA_REPORTS_KEPT_MS = 35 * 86_400_000;
const pad = (ms: number) => String(ms).padStart(15, '0');

/**
 * Each replica's reports as events in state.mdb (`replica-reports`,
 * replica\0time): only reports that change what it holds, so a replica
 * reporting every few seconds adds nothing while it stands still. Its lag at
 * any past time follows from them and the snapshots (control/replica-lag.ts).
 */
export class ReplicaHistory {
  private readonly db: Database<ReplicaReport, string>;

  constructor(
    repo: Repository,
    private readonly clock: Clock,
  ) {
    this.db = repo.database<ReplicaReport>(STATE_TABLES.replicaReports);
  }

  /** Store the report if it changes what the replica holds; drop its reports older than REPLICA_REPORTS_KEPT_MS but the newest of those (what it held then). */
  async record(replicaId: string, newestTime: string | undefined): Promise<void> {
    if (!newestTime) return;
    const now = this.clock.now();
    const last = this.latest(replicaId);
    if (last?.newest_time !== newestTime) await this.db.put(`${replicaId}\0${pad(now)}`, { at_ms: now, newest_time: newestTime });
    const old = [...this.db.getKeys({ start: `${replicaId}\0`, end: `${replicaId}\0${pad(now - REPLICA_REPORTS_KEPT_MS)}` })];
    for (const key of old.slice(0, -1)) await this.db.remove(key);
  }

  /** A replica's reports, oldest first. */
  of(replicaId: string): ReplicaReport[] {
    return [...this.db.getRange({ start: `${replicaId}\0`, end: `${replicaId}\u0001` })].map(({ value }) => value);
  }

  private latest(replicaId: string): ReplicaReport | undefined {
    const [r] = [...this.db.getRange({ start: `${replicaId}\u0001`, end: `${replicaId}\0`, reverse: true, limit: 1 })];
    return r?.value;
  }
}
