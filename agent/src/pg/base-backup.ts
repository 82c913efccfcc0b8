import fs from 'node:fs';
import path from 'node:path';
import {
  Clock,
  KeepError,
  parseLsn,
  pgCatalog,
  PG_BASE_TAG,
  SealPool,
  segmentName,
  segmentNo,
  segmentNoOf,
  Snapshot,
  TreeBuilder,
} from '@keep/core';
import { runBackup, RunOptions } from '../backup/run.js';
import { usableSnapshots } from '../repo/authentic.js';
import type { Unlocked } from '../repo/open.js';
import { PsqlSession, PgConnectOptions, unhex } from './psql.js';
import { countRows, ROW_COUNTS_FILE } from './row-counts.js';
import { Exclude, PgTreeWriter } from './tree-writer.js';

/** The snapshot-level options are every backup run's; the rest says where PostgreSQL is. */
export interface BaseBackupOptions extends Omit<RunOptions, 'parent'> {
  pgdata: string;
  connect: PgConnectOptions;
  /** an immediate checkpoint at the start (default: a spread one, like pg_basebackup) */
  fastCheckpoint: boolean;
  /** how long to wait for the backup's WAL to appear in the repository after pg_backup_stop */
  walWaitMs?: number;
  onProgress?: (files: number, bytes: number, current: string) => void;
}

export interface BaseBackupResult {
  snapshot: Snapshot;
  timeline: number;
  start_lsn: string;
  stop_lsn: string;
  start_wal: string;
  stop_wal: string;
  start_time: string;
  stop_time: string;
  system: string;
  pg_version: number;
  tablespaces: { oid: string; location: string }[];
}

/**
 * What PostgreSQL's own base backup leaves out (basebackup.c, and the "Making
 * a Base Backup Using the Low Level API" section of the manual): directories
 * whose contents are recreated at startup are kept empty, and files that
 * describe the running server (or a stale backup) are skipped.
 */
const EMPTY_DIRS = new Set(['pg_wal', 'pg_dynshmem', 'pg_notify', 'pg_serial', 'pg_snapshots', 'pg_stat_tmp', 'pg_subtrans', 'pg_replslot']);
const SKIP_FILES = new Set([
  'postmaster.pid',
  'postmaster.opts',
  'backup_label',
  'backup_label.old',
  'tablespace_map',
  'tablespace_map.old',
  'backup_manifest',
  'postgresql.auto.conf.tmp',
  'current_logfiles.tmp',
  'recovery.signal',
  'standby.signal',
]);

export function pgdataExclude(statsTempDir?: string): Exclude {
  return (rel, kind) => {
    const parts = rel.split('/');
    const base = parts[parts.length - 1];
    // pg_wal keeps archive_status (empty), like pg_basebackup's output.
    if (parts.length === 2 && EMPTY_DIRS.has(parts[0])) return !(parts[0] === 'pg_wal' && base === 'archive_status' && kind === 'dir');
    if (parts.length > 2 && EMPTY_DIRS.has(parts[0])) return true;
    if (statsTempDir && parts.length >= 2 && rel.startsWith(`${statsTempDir}/`)) return true;
    if (parts.length === 1 && SKIP_FILES.has(base) && kind !== 'dir') return true;
    if (base.startsWith('pg_internal.init')) return true;
    if (base.startsWith('pgsql_tmp')) return true;
    // pg_tblspc/<oid> links are kept as links; their targets are stored under /tablespaces.
    return false;
  };
}

/** Parse backup_label: START WAL LOCATION: 0/2000028 (file 000000010000000000000002), START TIMELINE: 1. */
export function parseBackupLabel(label: string): { startLsn: string; startWal: string; timeline: number } {
  const m = /^START WAL LOCATION: ([0-9A-F]+\/[0-9A-F]+) \(file ([0-9A-F]{24})\)$/m.exec(label);
  if (!m) throw new KeepError('INTERNAL', 'backup_label without START WAL LOCATION');
  const t = /^START TIMELINE: (\d+)$/m.exec(label);
  return { startLsn: m[1], startWal: m[2], timeline: t ? Number(t[1]) : parseInt(m[2].slice(0, 8), 16) };
}

/**
 * A consistent base backup of a running PostgreSQL with the non-exclusive
 * low-level API: pg_backup_start in a session kept open, the data directory
 * (and each tablespace) copied into a tree, pg_backup_stop, whose
 * backup_label and tablespace_map are added to the copy's root. The snapshot
 * is committed only once every WAL segment from the backup's start to its
 * stop is in the repository under the same source (pg_backup_stop waits for
 * archive_command; keep checks it went to this source).
 */
export async function runBaseBackup(repo: Unlocked, pool: SealPool, o: BaseBackupOptions): Promise<BaseBackupResult> {
  const pgdata = path.resolve(o.pgdata);
  if (!fs.existsSync(path.join(pgdata, 'PG_VERSION'))) throw new KeepError('INVALID_ARGUMENT', `${pgdata} is not a PostgreSQL data directory (no PG_VERSION)`);
  const psql = new PsqlSession(o.connect);
  try {
    const version = Number(await psql.value('SHOW server_version_num'));
    if (version < 100000) throw new KeepError('INVALID_ARGUMENT', `PostgreSQL ${version} is too old: keep pg needs 10 or later`);
    const [[dataDir, archiveMode, inRecovery, system, segSize, statsTemp]] = await psql.query(
      `SELECT current_setting('data_directory'), current_setting('archive_mode'), pg_is_in_recovery()::text,
              (SELECT system_identifier::text FROM pg_control_system()), (SELECT bytes_per_wal_segment::text FROM pg_control_init()),
              coalesce(current_setting('stats_temp_directory', true), '')`,
    );
    if (fs.realpathSync(dataDir) !== fs.realpathSync(pgdata)) throw new KeepError('INVALID_ARGUMENT', `the server at this connection runs ${dataDir}, not ${pgdata}`);
    if (inRecovery === 'true') throw new KeepError('INVALID_ARGUMENT', 'this server is a standby; keep pg backup runs against the primary');
    if (archiveMode === 'off') throw new KeepError('INVALID_ARGUMENT', "archive_mode is off: without archived WAL a base backup cannot be restored (set archive_mode = on and archive_command = 'keep pg wal-push %p')");
    const wss = Number(segSize);

    const tablespaces = fs.existsSync(path.join(pgdata, 'pg_tblspc'))
      ? fs
          .readdirSync(path.join(pgdata, 'pg_tblspc'))
          .filter((n) => /^\d+$/.test(n))
          .map((oid) => ({ oid, location: fs.readlinkSync(path.join(pgdata, 'pg_tblspc', oid)) }))
      : [];

    const label = `keep ${o.source} ${new Date(o.clock.now()).toISOString()}`.replace(/'/g, "''");
    // The start location is read back from backup_label, which pg_backup_stop returns.
    if (version >= 150000) await psql.value(`SELECT pg_backup_start('${label}', ${o.fastCheckpoint})::text`);
    else await psql.value(`SELECT pg_start_backup('${label}', ${o.fastCheckpoint}, false)::text`);
    const started = o.clock.now();

    let parsed!: ReturnType<typeof parseBackupLabel>;
    let stopLsn!: string;
    let stopWal!: string;
    let stopped!: number;
    const snapshot = await runBackup(
      repo,
      pool,
      o,
      async (uploader) => {
        // A pg_wal that is a link (initdb -X) is stored as a directory: restored as a link it would point into the original cluster's WAL.
        const writer = new PgTreeWriter(repo, uploader, o.compression, o.onProgress, new Set(['pg_wal']));
        const dataTree = await writer.walk(pgdata, pgdataExclude(statsTemp && !path.isAbsolute(statsTemp) ? statsTemp : undefined));
        const spaces = new TreeBuilder();
        for (const t of tablespaces) {
          const sub = await writer.walk(path.resolve(pgdata, 'pg_tblspc', t.location), (rel) => {
            const base = rel.slice(rel.lastIndexOf('/') + 1);
            return base.startsWith('pgsql_tmp') || base.startsWith('pg_internal.init');
          });
          spaces.addDir(PgTreeWriter.dirMeta(path.resolve(pgdata, 'pg_tblspc', t.location), t.oid), await writer.storeTree(sub));
          writer.stats.dirs++;
        }

        // Counted before pg_backup_stop: a drill checks them where recovery first becomes consistent.
        const counts = await countRows(psql, o.connect);
        let labelHex: string;
        let mapHex: string;
        [[stopLsn, labelHex, mapHex]] =
          version >= 150000
            ? await psql.query(`SELECT lsn::text, encode(convert_to(labelfile, 'UTF8'), 'hex'), encode(convert_to(coalesce(spcmapfile, ''), 'UTF8'), 'hex') FROM pg_backup_stop(true)`)
            : await psql.query(`SELECT lsn::text, encode(convert_to(labelfile, 'UTF8'), 'hex'), encode(convert_to(coalesce(spcmapfile, ''), 'UTF8'), 'hex') FROM pg_stop_backup(false, true)`);
        stopped = o.clock.now();
        const labelText = unhex(labelHex);
        const mapText = unhex(mapHex);
        parsed = parseBackupLabel(labelText);
        // The last segment needed holds the byte before the stop location (XLByteToPrevSeg).
        stopWal = segmentName(parsed.timeline, segmentNo(parseLsn(stopLsn) - 1n, wss), wss);

        const pgdataMeta = PgTreeWriter.dirMeta(pgdata, 'pgdata');
        await writer.addData(dataTree, 'backup_label', Buffer.from(labelText), pgdataMeta);
        if (mapText) await writer.addData(dataTree, 'tablespace_map', Buffer.from(mapText), pgdataMeta);
        const root = new TreeBuilder();
        root.addDir(pgdataMeta, await writer.storeTree(dataTree));
        if (tablespaces.length) root.addDir({ ...pgdataMeta, name: Buffer.from('tablespaces') }, await writer.storeTree(spaces));
        await writer.addData(root, ROW_COUNTS_FILE, Buffer.from(JSON.stringify(counts)), pgdataMeta);
        const tags = [
          PG_BASE_TAG,
          `timeline:${parsed.timeline}`,
          `start-lsn:${parsed.startLsn}`,
          `stop-lsn:${stopLsn}`,
          `start-wal:${parsed.startWal}`,
          `stop-wal:${stopWal}`,
          `stop-time:${new Date(stopped).toISOString()}`,
          `wal-segsize:${wss}`,
          `system:${system}`,
          `pg-version:${version}`,
          ...o.tags,
        ];
        return { root: await writer.storeTree(root), stats: writer.stats, started, tags };
      },
      { beforeCommit: () => waitForWal(repo, o.source, parsed.startWal, stopWal, wss, o.walWaitMs ?? 60_000, o.clock) },
    );
    const stopTime = new Date(stopped).toISOString();
    return {
      snapshot,
      timeline: parsed.timeline,
      start_lsn: parsed.startLsn,
      stop_lsn: stopLsn,
      start_wal: parsed.startWal,
      stop_wal: stopWal,
      start_time: snapshot.time,
      stop_time: stopTime,
      system,
      pg_version: version,
      tablespaces,
    };
  } finally {
    // An unfinished backup: closing the session makes PostgreSQL abort it.
    await psql.close();
  }
}

/**
 * pg_backup_stop returns once archive_command reported the last segment
 * archived; this checks that every segment from start to stop reached THIS
 * source (an archive_command pushing elsewhere would leave a backup that
 * cannot be restored). Waits a little: another process commits the push.
 */
async function waitForWal(repo: Unlocked, source: string, startWal: string, stopWal: string, segSize: number, waitMs: number, clock: Clock): Promise<void> {
  const tli = parseInt(startWal.slice(0, 8), 16);
  const first = segmentNoOf(startWal, segSize);
  const last = segmentNoOf(stopWal, segSize);
  const until = clock.now() + waitMs;
  for (;;) {
    const have = new Set(pgCatalog(usableSnapshots(repo.keys, await repo.conn.snapshots({ source }))).wal.map((w) => w.name));
    const missing: string[] = [];
    for (let n = first; n <= last; n++) {
      const name = segmentName(tli, n, segSize);
      if (!have.has(name)) missing.push(name);
    }
    if (missing.length === 0) return;
    if (clock.now() > until) {
      throw new KeepError(
        'INCOMPLETE',
        `base backup not saved: WAL ${missing[0]}${missing.length > 1 ? ` (and ${missing.length - 1} more)` : ''} is not archived in source ${source}; does archive_command run \`keep pg wal-push --source ${source} %p\`?`,
      );
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}
