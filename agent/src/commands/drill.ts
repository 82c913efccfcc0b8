import { KeepError, pgCatalog, processClock } from '@keep/core';
import { drillFailure, DrillResult, runDrill } from '../drill/drill.js';
import { openRepositoryWhile } from '../repo/open.js';
import { RestorePool, restoreWorkerCount } from '../restore/worker-pool.js';
import { parse } from '../terminal/args.js';
import { formatBytes, formatRate, printJsonLine } from '../terminal/output.js';
import { selectSnapshot } from './select.js';
import { pgDrillCommand } from './drill-postgres.js';

const USAGE = 'usage: keep drill [SNAPSHOT|latest] --source SOURCE [--target DIR | --no-write] [--at TIME] [--check SQL]... [--json]';

function kindText(r: DrillResult): string {
  return r.report.mode === 'read' ? 'read-only drill (--no-write: fetched, decrypted and verified, nothing written)' : 'restore drill (written to a scratch directory, read back, removed)';
}

function summary(r: DrillResult, reported: string): string {
  const d = r.report;
  const s = d.duration_ms / 1000;
  const head = `${kindText(r)} of snapshot ${d.snapshot.slice(0, 8)} (source ${d.source}): ${d.result === 'success' ? 'OK' : 'FAILED'}`;
  const lines = [
    head,
    `  ${d.files} files, ${r.dirs} dirs, ${r.symlinks} symlinks, ${formatBytes(d.bytes)} in ${s.toFixed(2)} s (${formatRate(d.bytes, Math.max(s, 0.001))}, ${(d.files / Math.max(s, 0.001)).toFixed(1)} files/s; start-up ${(d.setup_ms / 1000).toFixed(2)} s)`,
    `  verified ${d.files_verified} files${d.mode === 'write' ? ` and the metadata of ${r.entries_checked} entries` : ''}${d.verify_failures ? `: ${d.verify_failures} difference(s)` : ''}`,
    `  ${reported}`,
  ];
  if (r.stale_removed.length) lines.push(`  removed ${r.stale_removed.length} stale scratch director${r.stale_removed.length === 1 ? 'y' : 'ies'} of killed drills`);
  return lines.join('\n');
}

/**
 * `keep drill`: prove a snapshot restorable and time it (drill/drill.ts),
 * then tell keepd (ReportDrills) so its status, metrics and watchdog know.
 * Exits non-zero when the drill failed (after reporting it).
 */
export async function drillCommand(argv: string[]): Promise<void> {
  const clock = processClock();
  const started = clock.now();
  const { values, positionals } = parse(argv, {
    source: { type: 'string' },
    target: { type: 'string', short: 't' },
    'no-write': { type: 'boolean' },
    json: { type: 'boolean' },
    // PostgreSQL sources
    at: { type: 'string' },
    check: { type: 'string', multiple: true },
    dbname: { type: 'string' },
    'pg-bin': { type: 'string' },
  });
  if (!values.source) throw new KeepError('INVALID_ARGUMENT', USAGE);
  if (positionals.length > 1) throw new KeepError('INVALID_ARGUMENT', 'drill takes one snapshot');
  if (values.target && values['no-write']) throw new KeepError('INVALID_ARGUMENT', '--no-write writes nothing: it takes no --target');
  const mode = values['no-write'] ? 'read' : 'write';
  const pgOnly = values.at ?? values.check ?? values.dbname ?? values['pg-bin'];
  // as restore: the workers load their code while scrypt runs
  const pool = mode === 'write' ? new RestorePool(restoreWorkerCount(), process.getuid?.() === 0) : undefined;
  let r: DrillResult;
  let reported: string;
  try {
    const { repo, meanwhile: list } = await openRepositoryWhile((conn) => conn.snapshots({ source: values.source }));
    try {
      // A source with base backups is a PostgreSQL source (as keepd status's pitr decides): drilled by recovering it.
      if (pgCatalog(list).bases.length > 0) {
        if (mode === 'read') throw new KeepError('INVALID_ARGUMENT', 'a PostgreSQL drill recovers the database: it takes no --no-write');
        repo.conn.readAs(values.source);
        const ref = positionals[0];
        return await pgDrillCommand(repo, { ...values, source: values.source, base: ref && ref !== 'latest' ? ref : undefined }, started, () => clock.now());
      }
      if (pgOnly !== undefined) throw new KeepError('INVALID_ARGUMENT', '--at, --check, --dbname and --pg-bin are for PostgreSQL sources (this source has no base backup)');
      const snap = selectSnapshot(repo.keys, list, positionals[0] ?? 'latest', { source: values.source });
      repo.conn.readAs(snap.source);
      r = await runDrill(repo, snap, { mode, parent: values.target, now: () => clock.now(), started, wallStart: started, wallNow: () => clock.now(), pool });
      try {
        const ack = await repo.conn.reportDrills([r.report]);
        reported = ack.reported ? `reported to keepd at ${ack.server_time}` : 'not reported: an embedded repository has no keepd';
      } catch (e) {
        reported = `not reported: ${(e as Error).message}`;
      }
    } finally {
      await repo.conn.close();
    }
  } finally {
    await pool?.close().catch(() => undefined);
  }
  if (values.json) printJsonLine({ message_type: 'drill', ...r.report, kind_text: kindText(r), dirs: r.dirs, symlinks: r.symlinks, entries_checked: r.entries_checked, failures: r.failures.slice(0, 100), error: r.error?.message ?? null, reported, stale_removed: r.stale_removed.length });
  else console.log(summary(r, reported));
  if (r.report.result === 'failure') throw drillFailure(r);
}
