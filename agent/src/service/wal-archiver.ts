import fs from 'node:fs';
import path from 'node:path';
import { Clock, KeepError, SealPool, sealWorkerCount } from '@keep/core';
import { WAL_CHUNK } from '../pg/wal-store.js';
import type { Unlocked } from '../repo/open.js';
import { walPush, WalPushResult } from '../pg/wal.js';
import type { Job } from './config.js';
import type { HeldKey } from './held-key.js';
import type { Logger } from './log.js';
import { WalCatalog } from './wal-catalog.js';
import { SpareSessions } from './wal-spare-sessions.js';

/** A connection kept this long after the last push: segments come in bursts; a quiet archive holds nothing open. */
const IDLE_CLOSE_MS = 30_000;

/**
 * The archiver's seal pool: at least two workers, the second started as soon
 * as the first has a chunk queued (a backup's pool waits for 4 MiB of
 * backlog, and a segment's 16 chunks were sealed one at a time by one worker:
 * the longest stage of the ack). Two workers on two cores compete with keepd
 * and the main thread, but a segment's chunks are independent and the seal
 * is what the ack waits for (docs/POSTGRESQL.md).
 */
export function walSealPool(master: Buffer): SealPool {
  return new SealPool(master, Math.max(2, sealWorkerCount()), WAL_CHUNK);
}

/** What `keep pg wal-push` sends over the socket: the segment's path (same host: the agent reads it), and the source. */
export interface WalPushRequest {
  file: string;
  source: string;
}

/** A request the agent does not take (no postgres job of that source, a file outside its pg_wal): the client pushes directly. */
export class NotHandled extends Error {}

/**
 * Resident WAL archiving: `keep pg wal-push` hands each segment's path to the
 * agent, which stores it with the held key (no process start, no scrypt per
 * segment) and answers once walPush has committed it, so PostgreSQL drops a
 * segment only once it is durable in the repository. The snapshot per
 * segment is walPush's own, exactly as a direct push writes it, so wal-fetch
 * and `keep pg restore` read both alike. Pushes run concurrently on one
 * connection, kept open while segments keep coming; a second push of a name
 * already under way waits for the first (then finds it archived). Which names
 * the source already holds comes from a catalog kept for the connection
 * (wal-catalog.ts), not from listing every snapshot per segment: a name it
 * does not know is stored, so a stale catalog can only archive a copy twice,
 * never skip one (and a direct push happens only when no agent answers).
 */
export class WalArchiver {
  private lease?: Lease;
  private idle?: NodeJS.Timeout;
  private readonly inFlight = new Map<string, Promise<unknown>>();
  /** which names each source holds, for the connection in use (wal-catalog.ts) */
  private readonly catalog: WalCatalog;

  constructor(
    private readonly key: HeldKey,
    private readonly pool: SealPool,
    private readonly host: string,
    private readonly clock: Clock,
    private readonly log: Logger,
    /** the postgres jobs of the config in force (a reload changes them) */
    private readonly jobs: () => Job[],
  ) {
    this.catalog = new WalCatalog(clock);
  }

  async push(req: WalPushRequest): Promise<WalPushResult> {
    const job = this.jobs().find((j) => j.spec.type === 'postgres' && j.source === req.source);
    if (!job || job.spec.type !== 'postgres') throw new NotHandled(`the agent archives no postgres source ${req.source}`);
    const file = checkInPgWal(req.file, job.spec.pgdata);
    const key = `${req.source}\0${path.basename(file)}`;
    const before = this.inFlight.get(key);
    const run = (async () => {
      await before?.catch(() => undefined);
      return this.withRepo(async (repo, spares) => {
        const r = await walPush(repo, this.pool, { file, source: job.source, host: this.host, tier: job.tier, compression: job.compression, clock: this.clock, copies: (repo, source, name) => this.catalog.copies(repo, source, name), openSession: () => spares.take(job.source, this.host) });
        spares.prepare(job.source, this.host); // the next segment's session opens while this answer goes out
        return r;
      });
    })();
    this.inFlight.set(key, run);
    try {
      const r = await run;
      this.log.info({ job: job.name, wal: r.wal, already: r.already, bytes: r.bytes, bytes_sent: r.bytes_sent, duration_s: r.duration_s, stages_ms: r.stages_ms }, 'wal archived');
      return r;
    } catch (e) {
      this.log.error({ job: job.name, file, error: (e as Error).message }, 'wal push failed');
      throw e;
    } finally {
      if (this.inFlight.get(key) === run) this.inFlight.delete(key);
    }
  }

  /** Close the connection now (the agent is stopping); pushes under way finish first. */
  async close(): Promise<void> {
    await Promise.allSettled([...this.inFlight.values()]);
    clearTimeout(this.idle);
    await this.drop();
  }

  private async withRepo<T>(fn: (repo: Unlocked, spares: SpareSessions) => Promise<T>): Promise<T> {
    clearTimeout(this.idle);
    if (!this.lease) {
      // a new connection, perhaps to a repository changed while none was open: names are listed afresh
      this.catalog.clear();
      const repo = this.key.open();
      this.lease = { repo, users: 0, spares: new SpareSessions(repo, this.clock) };
    }
    const lease = this.lease;
    lease.users++;
    try {
      return await fn(await lease.repo, lease.spares);
    } catch (e) {
      // a broken connection (keepd restarted, network) is not handed to the next segment; the segment's own faults keep it
      if (!(e instanceof KeepError && SEGMENT_FAULTS.has(e.code)) && this.lease === lease) this.lease = undefined;
      // a spare of a connection that failed may be gone on keepd's side: the next push opens its own
      else void lease.spares.discard();
      throw e;
    } finally {
      if (--lease.users === 0) {
        if (this.lease !== lease) void close(lease);
        else this.idle = setTimeout(() => void this.drop(), IDLE_CLOSE_MS).unref();
      }
    }
  }

  private async drop(): Promise<void> {
    const lease = this.lease;
    this.lease = undefined;
    if (lease && lease.users === 0) await close(lease);
  }
}

/** Errors about the segment itself (not the connection): the connection stays. */
const SEGMENT_FAULTS = new Set(['ALREADY_EXISTS', 'INVALID_ARGUMENT', 'NOT_FOUND']);

interface Lease {
  repo: Promise<Unlocked>;
  users: number;
  /** sessions opened ahead on this connection (wal-spare-sessions.ts), closed with it */
  readonly spares: SpareSessions;
}

async function close(lease: Lease): Promise<void> {
  await lease.spares.close();
  await lease.repo.then((r) => r.conn.close(), () => undefined).catch(() => undefined);
}

/**
 * The segment's real path, which must lie in the job's pg_wal: anyone the
 * socket admits is the agent's own user, but the agent still reads nothing
 * for PostgreSQL outside the directory PostgreSQL archives from.
 */
export function checkInPgWal(file: string, pgdata: string): string {
  if (!path.isAbsolute(file)) throw new KeepError('INVALID_ARGUMENT', `the agent takes an absolute WAL path, not ${file}`);
  let real: string;
  let walDir: string;
  try {
    real = fs.realpathSync(file);
    walDir = fs.realpathSync(path.join(pgdata, 'pg_wal'));
  } catch (e) {
    throw new KeepError('NOT_FOUND', `cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  if (path.dirname(real) !== walDir) throw new NotHandled(`${file} is not in ${path.join(pgdata, 'pg_wal')}, the pg_wal of the agent's job for this source`);
  return real;
}
