import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DrillReport, KeepError, processClock, SealPool } from '@keep/core';
import type { Unlocked } from '../repo/open.js';
import { pointInTimeRestore } from '../pg/point-in-time.js';
import { readRowCounts } from '../pg/row-counts.js';
import { drillReport, DrillTiming } from './drill.js';
import { amcheck, compareRowCounts, runSqlCheck } from './pg-checks.js';
import { PrivateServer } from './pg-server.js';
import { makeScratch, removeStaleScratch } from './scratch.js';

export interface PgDrillOptions extends DrillTiming {
  source: string;
  /** a base backup id prefix (default: the newest) */
  base?: string;
  /** ms: the recovery target; undefined: the end of the restorable window (all archived WAL replayed) */
  at?: number;
  /** SQL statements that must each return true on the recovered database `dbname` */
  checks: string[];
  dbname: string;
  binDir?: string;
  /** where the scratch directory goes (default: the system's temp directory) */
  parent?: string;
  /** how long recovery may take before the drill gives up */
  recoveryTimeoutMs: number;
  env: NodeJS.ProcessEnv;
  envFile?: string;
}

export interface PgDrillResult {
  report: DrillReport;
  failures: string[];
  error?: Error;
  base?: string;
  /** tables whose row counts were compared (undefined: the base backup recorded none) */
  tables_counted?: number;
  amcheck: 'ok' | 'skipped' | 'not run';
  checks_run: number;
  scratch?: string;
  stale_removed: string[];
}

/** Debian and Ubuntu keep each major version's server apart: use the one the backup was taken with, when installed. */
function binDirFor(tags: string[], given: string | undefined): string | undefined {
  if (given) return given;
  const v = Number(tags.find((t) => t.startsWith('pg-version:'))?.slice(11));
  const dir = `/usr/lib/postgresql/${Math.floor(v / 10000)}/bin`;
  return v >= 100000 && fs.existsSync(path.join(dir, 'postgres')) ? dir : undefined;
}

/** "last completed transaction was at log time 2026-…" (or "recovery stopping before commit …, time …"): the target reached. */
function targetFromLog(log: string): number | undefined {
  const m = [...log.matchAll(/(?:last completed transaction was at log time|recovery stopping (?:before|after) (?:commit|abort) of transaction \d+, time) (\S+ \S+)/g)].pop();
  const t = m ? Date.parse(m[1].replace(' ', 'T').replace(/([+-]\d\d)$/, '$1:00')) : NaN;
  return Number.isFinite(t) ? t : undefined;
}

/**
 * A PostgreSQL drill: the latest base backup and its WAL restored into a
 * fresh scratch directory exactly as `keep pg restore` does (restore_command
 * is keep pg wal-fetch), then a private server (pg-server.ts) recovers it in
 * two runs: first stopping as soon as it is consistent, where the row counts
 * the base backup recorded are compared, then on to the target and promoted;
 * then pg_amcheck and the user's SQL checks. The server is stopped and the
 * scratch removed whatever happened (a killed drill's: at the next start).
 * Never throws: a failed drill is the result, to be reported.
 */
export async function runPgDrill(repo: Unlocked, o: PgDrillOptions): Promise<PgDrillResult> {
  const failures: string[] = [];
  const out: PgDrillResult = { report: undefined as unknown as DrillReport, failures, amcheck: 'not run', checks_run: 0, stale_removed: [] };
  let setup = 0;
  let files = 0;
  let bytes = 0;
  let consistent: number | undefined;
  let promoted: number | undefined;
  let reached: number | undefined;
  let snapshot = '0'.repeat(32);
  const parent = o.parent ?? os.tmpdir();
  const pool = new SealPool(repo.master);
  let server: PrivateServer | undefined;
  let scratch: ReturnType<typeof makeScratch> | undefined;
  try {
    out.stale_removed = removeStaleScratch(parent);
    scratch = makeScratch(parent);
    out.scratch = scratch.dir;
    setup = o.now() - o.started;
    const clock = processClock(o.env);
    const restored = await pointInTimeRestore(repo, pool, {
      source: o.source,
      pgdata: scratch.target,
      at: o.at,
      base: o.base,
      timeline: 'latest',
      tablespaces: new Map(),
      tablespaceRoot: path.join(scratch.dir, 'tablespaces'),
      action: 'promote',
      archiveMode: 'off',
      dryRun: false,
      env: o.env,
      envFile: o.envFile,
      clock,
    });
    const base = restored.plan.base.snapshot;
    snapshot = base.id;
    out.base = base.id;
    ({ files, bytes } = restored.files);
    const owner = restored.files.owner;
    if (process.getuid?.() === 0) fs.chownSync(scratch.dir, owner.uid, owner.gid);
    const counts = await readRowCounts(repo, pool, Buffer.from(base.root, 'hex'));
    const user = counts?.superuser ?? (process.getuid?.() === 0 ? 'postgres' : os.userInfo().username);
    const binDir = binDirFor(base.tags, o.binDir);
    const serverDir = path.join(scratch.dir, 'server');
    fs.mkdirSync(serverDir, { mode: 0o700 });
    server = new PrivateServer({ pgdata: scratch.target, dir: serverDir, binDir, owner, clock });
    const s = server;
    const isConsistent = async () => ((await s.sql('SELECT 1', user)).ok ? true : undefined);

    if (counts) {
      // Run 1: stop where recovery is first consistent (the base backup's end), paused, and count there.
      // (--at's recovery_target_time in postgresql.auto.conf is blanked first: PostgreSQL refuses two targets, in the order given)
      s.start({ recovery_target_time: '', recovery_target: 'immediate', recovery_target_action: 'pause' });
      await s.waitFor('consistent', isConsistent, o.recoveryTimeoutMs);
      consistent = o.now() - o.started;
      await s.waitFor('paused at the end of the base backup', async () => {
        const r = await s.sql('SELECT pg_is_wal_replay_paused()', user);
        return r.ok && r.rows[0]?.[0] === 't' ? true : undefined;
      }, o.recoveryTimeoutMs);
      const c = await compareRowCounts(s, user, counts);
      out.tables_counted = c.tables;
      failures.push(...c.failures);
      await s.stop();
    }
    // Run 2: on to the target (postgresql.auto.conf, as keep pg restore wrote it), then promoted.
    s.start({});
    await s.waitFor('consistent', isConsistent, o.recoveryTimeoutMs);
    const consistentAgain = o.now() - o.started;
    consistent ??= consistentAgain;
    await s.waitFor('promoted', async () => {
      const r = await s.sql('SELECT pg_is_in_recovery()', user);
      return r.ok && r.rows[0]?.[0] === 'f' ? true : undefined;
    }, o.recoveryTimeoutMs);
    // A recovery would not have paused to count rows and restarted: from the first consistent
    // point it goes on, so the time to promotion leaves out the counting detour and the second replay.
    promoted = consistent + (o.now() - o.started - consistentAgain);
    const last = await s.sql('SELECT coalesce(floor(extract(epoch FROM pg_last_xact_replay_timestamp()) * 1000)::bigint::text, \'\')', user);
    reached = (last.ok && last.rows[0]?.[0] ? Number(last.rows[0][0]) : undefined) ?? targetFromLog(s.logText());

    const am = await amcheck(s, user, binDir);
    out.amcheck = am.state;
    if (am.failure) failures.push(am.failure);
    for (const sql of o.checks) {
      out.checks_run++;
      const f = await runSqlCheck(s, user, o.dbname, sql);
      if (f) failures.push(f);
    }
  } catch (e) {
    out.error = e as Error;
  } finally {
    await server?.stop().catch(() => undefined);
    scratch?.remove();
    await pool.close().catch(() => undefined);
  }
  out.report = {
    ...drillReport(o, { source: o.source, snapshot, kind: 'postgres', mode: 'write', setup, files, bytes, verified: 0, failures: failures.length, error: out.error }),
    ...(consistent !== undefined ? { consistent_ms: Math.round(consistent) } : {}),
    ...(promoted !== undefined ? { promoted_ms: Math.round(promoted) } : {}),
    ...(reached !== undefined ? { recovered_to_ms: Math.round(reached) } : {}),
  };
  return out;
}

/** The error a failed PostgreSQL drill ends its command (or drill job) with. */
export function pgDrillFailure(r: PgDrillResult): KeepError {
  const why = r.error ? r.error.message : `${r.failures.length} validation failure(s) (first: ${r.failures[0]})`;
  return new KeepError(r.error instanceof KeepError ? r.error.code : 'CORRUPT', `PostgreSQL drill of source ${r.report.source} failed: ${why}`);
}
