import { Clock, Database, DrillReport, Repository, STATE_TABLES } from '@keep/core';

/** Drill reports kept per source (monthly drills: decades); the oldest go first. */
export const DRILLS_KEPT = 500;

/** A drill as keepd stored it: the agent's report plus keepd's clock when it arrived (the truth for "overdue"). */
export interface StoredDrill extends DrillReport {
  /** ms since the epoch, keepd's clock */
  received_ms: number;
}

/**
 * keepd's drill history (state.mdb `drills`, key "source\0id"): events only.
 * Everything shown about drills (last outcome, measured rate, RTO estimate)
 * is computed from these records when asked (rto.ts); nothing is counted
 * ahead. A report id seen before (an agent resending) is ignored.
 */
export class DrillStore {
  private readonly db: Database<StoredDrill, string>;

  constructor(
    repo: Repository,
    private readonly clock: Clock,
  ) {
    this.db = repo.database<StoredDrill>(STATE_TABLES.drills);
  }

  /** Store `list` (already checked) with this server's receive time; resolves with that time. */
  async record(list: DrillReport[]): Promise<number> {
    const received = this.clock.now();
    await this.db.transaction(() => {
      for (const d of list) {
        const key = `${d.source}\0${d.id}`;
        if (this.db.get(key)) continue;
        void this.db.put(key, { ...d, received_ms: received });
      }
      for (const source of new Set(list.map((d) => d.source))) {
        const kept = this.history(source);
        for (const old of kept.slice(0, Math.max(0, kept.length - DRILLS_KEPT))) void this.db.remove(`${source}\0${old.id}`);
      }
    });
    return received;
  }

  /** A source's drills, oldest first (keepd's receive time). */
  history(source: string): StoredDrill[] {
    return [...this.db.getRange({ start: `${source}\0`, end: `${source}\x01` })].map(({ value }) => value).sort((a, b) => a.received_ms - b.received_ms);
  }

  /** Every source with at least one drill. */
  sources(): string[] {
    const out = new Set<string>();
    for (const key of this.db.getKeys()) out.add(String(key).split('\0')[0]);
    return [...out];
  }
}
