import { runBaseBackup } from '../pg/base-backup.js';
import type { PgConnectOptions } from '../pg/psql.js';
import type { PostgresJobConfig } from './config-schema.js';
import type { Job } from './config.js';
import type { JobContext } from './files-job.js';
import type { RunTotals } from './run-outcome.js';

/** The job's connection section as psql's options (a socket directory goes where a host would). */
export function pgConnection(spec: PostgresJobConfig): PgConnectOptions {
  const c = spec.connection ?? {};
  return { host: c.socket ?? c.host, port: c.port, user: c.user, dbname: c.dbname, binDir: c.pg_bin };
}

/**
 * One scheduled run of a postgres job: a base backup, as `keep pg backup`,
 * in-process with the held key. Its commit waits for the backup's WAL to be
 * in the repository, which the agent's own WAL archiver stores meanwhile
 * (archive_command hands segments to it over the socket). A stop request
 * aborts before the commit: the psql session closes, PostgreSQL ends the
 * backup, nothing is committed.
 */
export async function runPostgresJob(job: Job, spec: PostgresJobConfig, c: JobContext): Promise<RunTotals> {
  c.signal.throwIfAborted();
  const r = await runBaseBackup(c.repo, c.pool, {
    pgdata: spec.pgdata,
    source: job.source,
    host: c.host,
    tags: job.tags,
    tier: job.tier,
    compression: job.compression,
    clock: c.clock,
    connect: pgConnection(spec),
    fastCheckpoint: spec.checkpoint === 'fast',
    onProgress: () => c.signal.throwIfAborted(),
  });
  return { snapshot: r.snapshot.id, files: r.snapshot.stats.files, bytes: r.snapshot.stats.bytes, warnings: [] };
}
