import { parseTime } from '@keep/core';
import { pgDrillFailure, PgDrillResult, runPgDrill } from '../drill/pg-drill.js';
import type { Unlocked } from '../repo/open.js';
import { envFileInUse } from '../terminal/global-flags.js';
import { formatBytes, printJsonLine } from '../terminal/output.js';

/** How long recovery may run before a drill gives up (a large cluster replaying a month of WAL takes hours). */
const RECOVERY_TIMEOUT_MS = 24 * 3600_000;

export interface PgDrillFlags {
  source: string;
  base?: string;
  at?: string;
  check?: string[];
  dbname?: string;
  'pg-bin'?: string;
  target?: string;
  json?: boolean;
}

const secs = (ms: number | undefined) => (ms === undefined ? 'not reached' : `${(ms / 1000).toFixed(2)} s`);

function summary(r: PgDrillResult, reported: string): string {
  const d = r.report;
  const lines = [
    `PostgreSQL drill (base backup and WAL restored to a scratch directory, recovered by a private server on a Unix socket, validated, removed) of source ${d.source}: ${d.result === 'success' ? 'OK' : 'FAILED'}`,
    `  base backup ${r.base?.slice(0, 8) ?? '(none)'}: ${d.files} files, ${formatBytes(d.bytes)}; consistent after ${secs(d.consistent_ms)}, promoted after ${secs(d.promoted_ms)}, whole drill ${secs(d.duration_ms)}`,
    `  recovered to ${d.recovered_to_ms ? new Date(d.recovered_to_ms).toISOString() : '(no transaction replayed)'}`,
    `  row counts: ${r.tables_counted === undefined ? 'not recorded by this base backup' : `${r.tables_counted} table(s) compared`}; pg_amcheck: ${r.amcheck}; ${r.checks_run} SQL check(s)`,
    ...r.failures.slice(0, 20).map((f) => `  FAILED ${f}`),
    ...(r.error ? [`  error: ${r.error.message}`] : []),
    `  ${reported}`,
  ];
  if (r.stale_removed.length) lines.push(`  removed ${r.stale_removed.length} stale scratch director${r.stale_removed.length === 1 ? 'y' : 'ies'} of killed drills`);
  return lines.join('\n');
}

/**
 * `keep drill --source S` on a PostgreSQL source (drill/pg-drill.ts): the
 * SQL checks are --check flags, else the agent config's drill job's `checks`.
 * Reported to keepd like a files drill; a failure exits 4 (CORRUPT) or with its error's code.
 */
export async function pgDrillCommand(repo: Unlocked, f: PgDrillFlags, started: number, now: () => number): Promise<void> {
  const r = await runPgDrill(repo, {
    source: f.source,
    base: f.base,
    at: f.at ? parseTime(f.at) : undefined,
    checks: f.check ?? [],
    dbname: f.dbname ?? 'postgres',
    binDir: f['pg-bin'],
    parent: f.target,
    recoveryTimeoutMs: RECOVERY_TIMEOUT_MS,
    env: process.env,
    envFile: envFileInUse(),
    now,
    started,
    wallStart: started,
    wallNow: now,
  });
  let reported: string;
  try {
    const ack = await repo.conn.reportDrills([r.report]);
    reported = ack.reported ? `reported to keepd at ${ack.server_time}` : 'not reported: an embedded repository has no keepd';
  } catch (e) {
    reported = `not reported: ${(e as Error).message}`;
  }
  if (f.json) printJsonLine({ message_type: 'drill', ...r.report, base: r.base ?? null, tables_counted: r.tables_counted ?? null, amcheck: r.amcheck, checks_run: r.checks_run, failures: r.failures.slice(0, 100), error: r.error?.message ?? null, reported, stale_removed: r.stale_removed.length });
  else console.log(summary(r, reported));
  if (r.report.result === 'failure') throw pgDrillFailure(r);
}
