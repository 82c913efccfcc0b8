import { KeepError, pgCatalog } from '@keep/core';
import { pgDrillFailure, runPgDrill } from '../drill/pg-drill.js';
import { drillFailure, runDrill } from '../drill/drill.js';
import type { DrillJobConfig } from './config-schema.js';
import type { Job } from './config.js';
import type { JobContext } from './files-job.js';
import type { RunTotals } from './run-outcome.js';

/**
 * One run of a drill job: `keep drill latest --source SOURCE` in-process
 * (drill/drill.ts). It restores into its own scratch directory (or, with
 * no_write, writes nothing), never into the job's live paths, and removes
 * that directory whatever happens; a killed drill's leftovers go at the next
 * start. The result goes to keepd as a drill (ReportDrills), not as a
 * backup run; a failed drill fails the run (the agent's log and state file).
 */
export async function runDrillJob(job: Job, spec: DrillJobConfig, c: JobContext): Promise<RunTotals> {
  const started = c.clock.now();
  const list = await c.repo.conn.snapshots({ source: job.source });
  const latest = list.reduce<(typeof list)[number] | undefined>((n, s) => (!n || s.time > n.time ? s : n), undefined);
  if (!latest) throw new KeepError('NOT_FOUND', `no snapshot of source ${job.source} to drill`);
  c.signal.throwIfAborted();
  c.repo.conn.readAs(latest.source);
  if (pgCatalog(list).bases.length > 0) return runPgDrillJob(job, spec, c, started);
  const r = await runDrill(c.repo, latest, { mode: spec.no_write ? 'read' : 'write', parent: spec.target, now: () => c.clock.now(), started, wallStart: started, wallNow: () => c.clock.now() });
  await c.repo.conn.reportDrills([r.report]).catch((e: unknown) => c.warn(`could not report the drill to keepd: ${(e as Error).message}`));
  if (r.report.result === 'failure') throw drillFailure(r);
  return { snapshot: latest.id, files: r.report.files, bytes: r.report.bytes, warnings: [] };
}

/** A drill job on a PostgreSQL source: recovered into scratch by a private server, its `checks` run (drill/pg-drill.ts). */
async function runPgDrillJob(job: Job, spec: DrillJobConfig, c: JobContext, started: number): Promise<RunTotals> {
  const r = await runPgDrill(c.repo, {
    source: job.source,
    checks: spec.checks ?? [],
    dbname: spec.database ?? 'postgres',
    parent: spec.target,
    recoveryTimeoutMs: 24 * 3600_000,
    env: process.env,
    now: () => c.clock.now(),
    started,
    wallStart: started,
    wallNow: () => c.clock.now(),
  });
  await c.repo.conn.reportDrills([r.report]).catch((e: unknown) => c.warn(`could not report the drill to keepd: ${(e as Error).message}`));
  if (r.report.result === 'failure') throw pgDrillFailure(r);
  return { snapshot: r.report.snapshot, files: r.report.files, bytes: r.report.bytes, warnings: [] };
}
