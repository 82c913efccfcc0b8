import { KeepError, randomId, RepoKeys, RunKind, RunReport, sealRunDetail } from '@keep/core';
import type { RepoConnection } from '../repo/connection.js';
import { isRemote } from '../repo/open.js';
import type { Job } from './config.js';
import type { HeldKey } from './held-key.js';
import type { Logger } from './log.js';
import { ReportQueue } from './report-queue.js';
import type { RunOutcome } from './run-outcome.js';

/** A run as keepd learns of it: labels, counts and the error's class in plaintext, the error text and warnings sealed. */
export function runReport(o: RunOutcome, job: Job, keys: Pick<RepoKeys, 'runDetailKey'>): RunReport {
  const detail = o.error !== undefined || o.warnings.length ? sealRunDetail(keys, { error: o.error, warnings: o.warnings }) : undefined;
  return {
    id: randomId(),
    source: job.source,
    job: job.name,
    kind: job.spec.type as RunKind,
    reason: o.reason,
    attempt: o.attempt,
    start_ms: o.start,
    end_ms: o.end,
    result: o.result,
    files: o.files,
    bytes: o.bytes,
    ...(o.snapshot ? { snapshot: o.snapshot } : {}),
    ...(o.result === 'failure' ? { error_class: o.error_class ?? 'UNKNOWN' } : {}),
    warnings: o.warnings.length,
    ...(detail ? { sealed_detail: detail } : {}),
  };
}

/** Refusals a resend cannot cure (a token without the source, a report keepd cannot take). */
function refusedForGood(e: unknown): boolean {
  return e instanceof KeepError && (e.code === 'PERMISSION_DENIED' || e.code === 'INVALID_ARGUMENT');
}

/**
 * Sends each run's outcome to keepd (ReportRuns). A report that cannot be
 * delivered waits in the queue (report-queue.ts) and goes with the next
 * one; delivery never fails a job. An embedded repository has no keepd:
 * its runs stay in the state file only.
 */
export class RunReporter {
  private readonly queue: ReportQueue;
  /** one delivery at a time: two jobs ending together send the queue once */
  private chain: Promise<void> = Promise.resolve();

  constructor(
    stateDir: string,
    private readonly key: HeldKey,
    private readonly location: string,
    private readonly log: Logger,
  ) {
    this.queue = ReportQueue.open(stateDir);
  }

  async report(o: RunOutcome, job: Job): Promise<void> {
    if (!isRemote(this.location)) return;
    this.queue.add(runReport(o, job, this.key.keys));
    this.chain = this.chain.then(() => this.deliver());
    return this.chain;
  }

  private async deliver(): Promise<void> {
    const batch = this.queue.all();
    if (batch.length === 0) return;
    try {
      const repo = await this.key.open();
      try {
        await this.send(repo.conn, batch);
      } finally {
        await repo.conn.close();
      }
    } catch (e) {
      this.log.warn({ error: (e as Error).message, pending: this.queue.size }, 'reporting runs to keepd failed; they go with the next report');
    }
  }

  /** The batch at once; when keepd refuses it for good, report by report, dropping (and logging) the ones refused so they cannot hold up the rest forever. */
  private async send(conn: RepoConnection, batch: RunReport[]): Promise<void> {
    try {
      const r = await conn.reportRuns(batch);
      this.queue.delivered(batch.map((b) => b.id));
      if (r.reported) this.log.info({ reports: batch.length, server_time: r.server_time }, 'runs reported to keepd');
      return;
    } catch (e) {
      if (!refusedForGood(e)) throw e;
    }
    for (const one of batch) {
      try {
        await conn.reportRuns([one]);
      } catch (e) {
        if (!refusedForGood(e)) throw e;
        this.log.error({ job: one.job, source: one.source, error: (e as Error).message }, 'keepd refused a run report; it is dropped (the state file keeps the run)');
      }
      this.queue.delivered([one.id]);
    }
  }
}
