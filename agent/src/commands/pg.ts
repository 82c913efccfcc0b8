import os from 'node:os';
import { Compression, KeepError, parseCompression, parseTier, parseTime, pgCatalog, pitrWindow, processClock, SealPool, TIERS } from '@keep/core';
import { parse, positiveInt } from '../terminal/args.js';
import { USAGE } from '../commands/usage.js';
import { formatBytes, formatRate, printJson, ProgressLine } from '../terminal/output.js';
import { openRepository, Unlocked } from '../repo/open.js';
import { runBaseBackup } from '../pg/base-backup.js';
import { pgCommandLine, pgSource } from '../pg/env.js';
import { envFileInUse } from '../terminal/global-flags.js';
import { allowUnauthenticated, stderrWarn, usableSnapshots } from '../repo/authentic.js';
import { pointInTimeRestore } from '../pg/point-in-time.js';
import type { TimelineChoice } from '../pg/restore.js';
import { DEFAULT_PREFETCH, fetchWal, prefetchDir, takePrefetched, walPush } from '../pg/wal.js';

/** Exit status of wal-fetch for a failure that is not "no such file": above 125 makes PostgreSQL abort recovery instead of ending it there. */
const FETCH_FATAL = 128;

export async function pgCommand(argv: string[]): Promise<void> {
  const [sub, ...rest] = argv;
  switch (sub) {
    case 'backup':
      return pgBackup(rest);
    case 'wal-push':
    case 'archive-push':
      return pgWalPush(rest);
    case 'wal-fetch':
    case 'archive-get':
      return pgWalFetch(rest);
    case 'restore':
      return pgRestore(rest);
    case 'config':
      return pgConfig(rest);
    case 'info':
      return pgInfo(rest);
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      console.log(USAGE.pg);
      return;
    default:
      throw new KeepError('INVALID_ARGUMENT', `unknown subcommand pg ${sub} (see keep pg help)`);
  }
}

const common = { source: { type: 'string' } } as const;

/** `keep pg config` without --tier: archive_timeout from this tier's RPO. */
const DEFAULT_PG_TIER = 'standard';

function compressionFor(values: { compression?: string; tier?: string }): { compression: Compression; tier?: string } {
  const tier = values.tier ? parseTier(values.tier) : undefined;
  return { compression: values.compression ? parseCompression(values.compression) : tier ? TIERS[tier].compression : 'medium', tier };
}

async function withRepo<T>(env: NodeJS.ProcessEnv, fn: (repo: Unlocked, pool: SealPool) => Promise<T>): Promise<T> {
  const repo = await openRepository(env);
  const pool = new SealPool(repo.master);
  try {
    return await fn(repo, pool);
  } finally {
    await pool.close();
    await repo.conn.close();
  }
}

async function pgBackup(argv: string[]): Promise<void> {
  const { values, positionals } = parse(argv, {
    ...common,
    pgdata: { type: 'string', short: 'D' },
    host: { type: 'string' },
    socket: { type: 'string' },
    port: { type: 'string' },
    user: { type: 'string' },
    dbname: { type: 'string' },
    'pg-bin': { type: 'string' },
    checkpoint: { type: 'string' },
    tag: { type: 'string', multiple: true },
    tier: { type: 'string' },
    compression: { type: 'string' },
  });
  if (!values.pgdata || positionals.length) throw new KeepError('INVALID_ARGUMENT', 'usage: keep pg backup --pgdata DIR [--source N] [--host H|--socket DIR] [--port P] [--user U]');
  if (values.checkpoint && values.checkpoint !== 'fast' && values.checkpoint !== 'spread') throw new KeepError('INVALID_ARGUMENT', '--checkpoint is fast or spread');
  const env = process.env;
  const source = pgSource(values.source, env);
  const progress = new ProgressLine();
  const r = await withRepo(env, (repo, pool) =>
    runBaseBackup(repo, pool, {
      pgdata: values.pgdata!,
      source,
      host: os.hostname(),
      tags: values.tag ?? [],
      ...compressionFor(values),
      clock: processClock(env),
      connect: { host: values.socket ?? values.host, port: values.port, user: values.user, dbname: values.dbname, binDir: values['pg-bin'] },
      fastCheckpoint: values.checkpoint === 'fast',
      onProgress: (files, bytes, current) => progress.update((s) => `${files} files  ${formatBytes(bytes)}  ${formatRate(bytes, s)}  ${current}`),
    }),
  );
  progress.done();
  const st = r.snapshot.stats;
  if (values.json) {
    printJson({
      snapshot: r.snapshot.id,
      source,
      time: r.snapshot.time,
      timeline: r.timeline,
      start_lsn: r.start_lsn,
      stop_lsn: r.stop_lsn,
      start_wal: r.start_wal,
      stop_wal: r.stop_wal,
      start_time: r.start_time,
      stop_time: r.stop_time,
      system: r.system,
      pg_version: r.pg_version,
      tablespaces: r.tablespaces,
      files: st.files,
      bytes: st.bytes,
      bytes_read: st.bytes_read,
      bytes_sent: st.bytes_sent,
      chunks_new: st.chunks_new,
      duration_s: st.duration_s,
      tags: r.snapshot.tags,
    });
  } else {
    console.log(`base backup ${r.snapshot.id.slice(0, 8)} saved (source ${source}): ${st.files} files, ${formatBytes(st.bytes)}, stored ${formatBytes(st.bytes_sent)} new in ${st.duration_s.toFixed(2)} s`);
    console.log(`WAL ${r.start_wal} (${r.start_lsn}) .. ${r.stop_wal} (${r.stop_lsn}), timeline ${r.timeline}; restorable to any time after ${r.stop_time}`);
  }
}

async function pgWalPush(argv: string[]): Promise<void> {
  const { values, positionals } = parse(argv, { ...common, tier: { type: 'string' }, compression: { type: 'string' } });
  if (positionals.length !== 1) throw new KeepError('INVALID_ARGUMENT', 'usage: keep pg wal-push [--source N] PATH   (archive_command: keep pg wal-push %p)');
  const env = process.env;
  const source = pgSource(values.source, env);
  const r = await withRepo(env, (repo, pool) => walPush(repo, pool, { file: positionals[0], source, host: os.hostname(), ...compressionFor(values), clock: processClock(env) }));
  if (values.json) printJson({ source, ...r });
  // Quiet on success (PostgreSQL logs archive_command's output); say so only when nothing was sent.
  else if (r.already) process.stderr.write(`keep: ${r.wal} already archived in source ${source} (snapshot ${r.snapshot.slice(0, 8)}); nothing sent\n`);
}

/**
 * restore_command. Exit 1, silently, when the file is not archived:
 * PostgreSQL asks for files that may not exist (the next segment at the end of
 * the archive, history files of timelines that were never created) and reads
 * any non-zero status below 126 as "not there". Any other failure (repository
 * unreachable, damaged data) exits 128, which makes PostgreSQL stop recovery
 * with an error instead of treating the archive as ended and promoting early.
 */
async function pgWalFetch(argv: string[]): Promise<void> {
  let outcome: 'ok' | 'missing' | Error;
  let json = false;
  let wanted: string | undefined;
  try {
    const { values, positionals } = parse(argv, { ...common, system: { type: 'string' }, prefetch: { type: 'string' } });
    json = Boolean(values.json);
    if (positionals.length !== 2) throw new KeepError('INVALID_ARGUMENT', 'usage: keep pg wal-fetch [--source N] [--prefetch N] NAME PATH   (restore_command: keep pg wal-fetch %f %p)');
    const [name, dest] = positionals;
    wanted = name;
    const prefetch = positiveInt(values.prefetch, '--prefetch') ?? DEFAULT_PREFETCH;
    const spool = prefetchDir(dest);
    if (prefetch > 0 && takePrefetched(spool, name, dest)) {
      if (json) printJson({ wal: name, path: dest, prefetched: true });
      return;
    }
    const env = process.env;
    const source = pgSource(values.source, env);
    outcome = await withRepo(env, async (repo, pool) => {
      const r = await fetchWal(repo, pool, { source, name, dest, system: values.system, prefetch, spool, env });
      if (!r) return 'missing' as const;
      if (json) printJson({ source, wal: name, path: dest, bytes: r.bytes, snapshot: r.copy.snapshot.id, pushed: r.copy.snapshot.time, prefetched: r.ahead });
      return 'ok' as const;
    });
  } catch (e) {
    outcome = e as Error;
  }
  if (outcome === 'ok') return;
  if (outcome === 'missing') {
    if (json) printJson({ wal: wanted, found: false });
    process.exit(1);
  }
  process.stderr.write(`keep: error: ${(outcome.message || String(outcome)).split('\n')[0]}\n`);
  process.exit(outcome instanceof KeepError && outcome.code === 'INVALID_ARGUMENT' ? 2 : FETCH_FATAL);
}

function parseTimeline(v: string | undefined): TimelineChoice {
  if (v === undefined || v === 'latest') return 'latest';
  if (v === 'current') return 'current';
  if (/^\d+$/.test(v) && Number(v) > 0) return Number(v);
  throw new KeepError('INVALID_ARGUMENT', `--timeline is latest, current or a timeline number, not ${v}`);
}

async function pgRestore(argv: string[]): Promise<void> {
  const { values, positionals } = parse(argv, {
    ...common,
    pgdata: { type: 'string', short: 'D' },
    at: { type: 'string' },
    base: { type: 'string' },
    timeline: { type: 'string' },
    tablespace: { type: 'string', multiple: true },
    'target-action': { type: 'string' },
    'archive-mode': { type: 'string' },
    'restore-command': { type: 'string' },
    'dry-run': { type: 'boolean' },
    'allow-unauthenticated': { type: 'boolean' },
  });
  if (!values.pgdata || positionals.length) throw new KeepError('INVALID_ARGUMENT', 'usage: keep pg restore --pgdata DIR [--at TIME] [--source N] [--timeline latest|current|N]');
  const action = values['target-action'] ?? 'promote';
  if (!['promote', 'pause', 'shutdown'].includes(action)) throw new KeepError('INVALID_ARGUMENT', '--target-action is promote, pause or shutdown');
  const archiveMode = values['archive-mode'] ?? 'preserve';
  if (archiveMode !== 'off' && archiveMode !== 'preserve') throw new KeepError('INVALID_ARGUMENT', '--archive-mode is off or preserve');
  const tablespaces = new Map<string, string>();
  for (const t of values.tablespace ?? []) {
    const m = /^(\d+)=(.+)$/.exec(t);
    if (!m) throw new KeepError('INVALID_ARGUMENT', `--tablespace takes OID=DIR, not ${t}`);
    tablespaces.set(m[1], m[2]);
  }
  const at = values.at ? parseTime(values.at) : undefined;
  const timeline = parseTimeline(values.timeline);
  const env = process.env;
  const source = pgSource(values.source, env);
  const clock = processClock(env);
  const progress = new ProgressLine();
  const started = clock.now();
  const r = await withRepo(env, (repo, pool) =>
    pointInTimeRestore(repo, pool, {
      source,
      pgdata: values.pgdata!,
      at,
      base: values.base,
      timeline,
      tablespaces,
      action,
      archiveMode,
      restoreCommand: values['restore-command'],
      dryRun: Boolean(values['dry-run']),
      allowUnauthenticated: values['allow-unauthenticated'],
      env,
      envFile: envFileInUse(),
      clock,
      onProgress: (n, bytes, current) => progress.update((s) => `${n} files  ${formatBytes(bytes)}  ${formatRate(bytes, s)}  ${current ?? ''}`),
    }),
  );
  progress.done();
  const { plan, files, settings } = r;
  const duration = (clock.now() - started) / 1000;
  const out = {
    ...(values['dry-run'] ? { dry_run: true } : {}),
    source,
    pgdata: values.pgdata,
    at: at !== undefined ? new Date(at).toISOString() : null,
    base: {
      snapshot: plan.base.snapshot.id,
      start_time: plan.base.snapshot.time,
      stop_time: new Date(plan.base.stopTime).toISOString(),
      timeline: plan.base.timeline,
      start_lsn: plan.base.startLsn,
      stop_lsn: plan.base.stopLsn,
      start_wal: plan.base.startWal,
      stop_wal: plan.base.stopWal,
    },
    timeline: plan.timeline,
    target_timeline: plan.target_timeline,
    timeline_path: plan.path,
    wal: plan.wal,
    tablespaces: files.tablespaces,
    files: files.files,
    bytes: files.bytes,
    settings,
    duration_s: duration,
  };
  if (values.json) printJson(out);
  else if (values['dry-run']) {
    console.log(`would restore base backup ${plan.base.snapshot.id.slice(0, 8)} (${out.base.start_time} .. ${out.base.stop_time}, timeline ${plan.base.timeline}) to ${values.pgdata}`);
    console.log(`and replay WAL ${plan.wal.from} .. ${plan.wal.to} (${plan.wal.segments} segment(s)) on timeline(s) ${plan.path.map((p) => p.timeline).join(' -> ')}`);
  } else {
    console.log(`restored base backup ${plan.base.snapshot.id.slice(0, 8)} (${out.base.start_time} .. ${out.base.stop_time}, timeline ${plan.base.timeline}) to ${values.pgdata}: ${files.files} files, ${formatBytes(files.bytes)} in ${duration.toFixed(2)} s`);
    console.log(`recovery will replay WAL ${plan.wal.from} .. ${plan.wal.to} (${plan.wal.segments} segment(s), last pushed ${plan.wal.to_time})${at !== undefined ? ` and stop at ${out.at}, then ${action}` : ', everything archived'}`);
    console.log(`start PostgreSQL on ${values.pgdata} to recover (settings in postgresql.auto.conf, recovery.signal written)`);
  }
}

async function pgConfig(argv: string[]): Promise<void> {
  const { values, positionals } = parse(argv, { ...common, tier: { type: 'string' } });
  if (positionals.length) throw new KeepError('INVALID_ARGUMENT', 'usage: keep pg config [--source N] [--tier T] [--env-file F]');
  const env = process.env;
  const source = pgSource(values.source, env);
  const tier = parseTier(values.tier ?? DEFAULT_PG_TIER);
  const tierArgs = values.tier ? ['--tier', tier] : [];
  const archive = pgCommandLine('wal-push', ['--source', source, ...tierArgs], env, envFileInUse(), ['%p']);
  const restore = pgCommandLine('wal-fetch', ['--source', source], env, envFileInUse(), ['%f', '%p']);
  // A segment is archived when full or when archive_timeout forces a switch: the tier's RPO bounds how much is not archived yet.
  const archiveTimeout = `${TIERS[tier].rpo_s}s`;
  if (values.json) printJson({ source, tier, archive_command: archive, restore_command: restore, archive_timeout: archiveTimeout });
  else {
    const q = (s: string) => `'${s.replace(/'/g, "''")}'`;
    console.log(`wal_level = replica\narchive_mode = on\narchive_command = ${q(archive)}\narchive_timeout = ${q(archiveTimeout)}   # tier ${tier}: RPO ${TIERS[tier].rpo_s} s\n# for a restore (keep pg restore writes it): restore_command = ${q(restore)}`);
  }
}

async function pgInfo(argv: string[]): Promise<void> {
  const { values, positionals } = parse(argv, { ...common, 'allow-unauthenticated': { type: 'boolean' } });
  if (positionals.length) throw new KeepError('INVALID_ARGUMENT', 'usage: keep pg info [--source N]');
  const env = process.env;
  const source = pgSource(values.source, env);
  const snaps = await withRepo(env, async (repo) => usableSnapshots(repo.keys, await repo.conn.snapshots({ source }), { allowUnauthenticated: allowUnauthenticated(values['allow-unauthenticated'], env), warn: stderrWarn }));
  const { bases, wal } = pgCatalog(snaps);
  const window = pitrWindow(snaps);
  if (values.json) {
    printJson({
      source,
      window,
      base_backups: bases.map((b) => ({ snapshot: b.snapshot.id, start_time: b.snapshot.time, stop_time: new Date(b.stopTime).toISOString(), timeline: b.timeline, start_wal: b.startWal, stop_wal: b.stopWal, bytes: b.snapshot.stats.bytes })),
      wal: { files: wal.length, first: wal[0]?.name ?? null, last: wal[wal.length - 1]?.name ?? null },
    });
    return;
  }
  console.log(`source ${source}: ${bases.length} base backup(s), ${wal.length} WAL file(s)`);
  for (const b of bases) console.log(`  base ${b.snapshot.id.slice(0, 8)}  ${b.snapshot.time} .. ${new Date(b.stopTime).toISOString()}  timeline ${b.timeline}  ${b.startWal}`);
  console.log(window.from ? `restorable from ${window.from} to ${window.to ?? window.from}` : 'not restorable yet (no base backup)');
  for (const g of window.gaps) console.log(`  gap on timeline ${g.timeline}: ${g.count} segment(s) missing, first ${g.missing[0]}`);
}
