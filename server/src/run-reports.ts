import { Clock, Database, Repository, RunReport, STATE_TABLES } from '@keep/core';

/** Reports kept per source: the newest; counters cover every report ever received. */
export const RUN_REPORTS_KEPT = 1000;

/** A stored report: the agent's, plus keepd's clock when it arrived (the truth for RPO and alerts). */
export interface StoredRunReport extends RunReport {
  /** ms since the epoch, keepd's clock */
  received_ms: number;
}

/** Per source (LMDB `run-summaries`): what `keepd status` shows and the watchdog will judge. */
export interface RunSummary {
  source: string;
  runs_success: number;
  runs_failure: number;
  /** failures reported since the last success */
  consecutive_failures: number;
  last_result: RunReport['result'];
  last_job: string;
  /** keepd's receive times, ms */
  last_run_ms: number;
  last_success_ms?: number;
  last_failure_ms?: number;
  last_error_class?: string;
  /** ids of the kept reports, oldest first (for dropping the oldest) */
  kept: string[];
}

/**
 * keepd's record of agent runs (state.mdb, not rebuildable): the last
 * RUN_REPORTS_KEPT reports per source (LMDB `run-reports`, key
 * "source\0id") and a summary with counters per source. A report id seen
 * before (an agent resending what it could not confirm) is ignored.
 */
export class RunReportStore {
  private readonly reports: Database<StoredRunReport, string>;
  private readonly summaries: Database<RunSummary, string>;

  constructor(
    repo: Repository,
    private readonly clock: Clock,
  ) {
    this.reports = repo.database<StoredRunReport>(STATE_TABLES.runReports);
    this.summaries = repo.database<RunSummary>(STATE_TABLES.runSummaries);
  }

  /** Store `list` (already checked) with this server's receive time; resolves with that time. */
  async record(list: RunReport[]): Promise<number> {
    const received = this.clock.now();
    // in the order the runs ended: a batch resent after an outage replays history in order
    const ordered = [...list].sort((a, b) => a.end_ms - b.end_ms);
    await this.reports.transaction(() => {
      for (const r of ordered) {
        const key = `${r.source}\0${r.id}`;
        if (this.reports.get(key)) continue;
        void this.reports.put(key, { ...r, received_ms: received });
        const s = this.summaries.get(r.source) ?? { source: r.source, runs_success: 0, runs_failure: 0, consecutive_failures: 0, last_result: r.result, last_job: r.job, last_run_ms: received, kept: [] };
        const failed = r.result === 'failure';
        const next: RunSummary = {
          ...s,
          runs_success: s.runs_success + (failed ? 0 : 1),
          runs_failure: s.runs_failure + (failed ? 1 : 0),
          consecutive_failures: failed ? s.consecutive_failures + 1 : 0,
          last_result: r.result,
          last_job: r.job,
          last_run_ms: received,
          ...(failed ? { last_failure_ms: received, last_error_class: r.error_class } : { last_success_ms: received }),
          kept: [...s.kept, r.id],
        };
        while (next.kept.length > RUN_REPORTS_KEPT) void this.reports.remove(`${r.source}\0${next.kept.shift()!}`);
        void this.summaries.put(r.source, next);
      }
    });
    return received;
  }

  list(): RunSummary[] {
    return [...this.summaries.getRange()].map(({ value }) => value);
  }

  /** A source's kept reports, oldest first. */
  recent(source: string): StoredRunReport[] {
    const s = this.summaries.get(source);
    return (s?.kept ?? []).map((id) => this.reports.get(`${source}\0${id}`)).filter((r): r is StoredRunReport => r !== undefined);
  }
}
