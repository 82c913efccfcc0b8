import { Clock, SESSION_LEASE_MS } from '@keep/core';
import type { BackupSession } from '../repo/connection.js';
import type { Unlocked } from '../repo/open.js';

/** A spare older than this is closed and a new one opened: keepd's lease of an idle session must not end under a push. */
export const SPARE_MAX_AGE_MS = SESSION_LEASE_MS / 2;

/**
 * Writer sessions the resident WAL archiver opens ahead, one per source and
 * host, on its connection while it waits for the next segment: a push then
 * uploads at once instead of first waiting for OpenSession (keepd's session
 * record and its audit record). A spare is used by one push and replaced
 * after it; all close with the connection (the archiver's idle close), so
 * keepd holds at most one idle session per source of an archive in use.
 */
export class SpareSessions {
  private readonly spares = new Map<string, { session: Promise<BackupSession>; opened: number }>();
  private closed = false;

  constructor(
    private readonly repo: Promise<Unlocked>,
    private readonly clock: Clock,
  ) {}

  /** A session for the next push: the spare when a fresh one is kept (or was refused: then a new one, which says why), else a new one. */
  async take(source: string, host: string): Promise<BackupSession> {
    const key = `${source}\0${host}`;
    const spare = this.spares.get(key);
    this.spares.delete(key);
    const fresh = async () => (await this.repo).conn.beginBackup({ source, host });
    if (!spare) return fresh();
    if (this.clock.now() - spare.opened >= SPARE_MAX_AGE_MS) {
      void abortQuietly(spare.session);
      return fresh();
    }
    return spare.session.catch(fresh);
  }

  /** Open the next push's session now, unless one is kept already. */
  prepare(source: string, host: string): void {
    const key = `${source}\0${host}`;
    if (this.closed || this.spares.has(key)) return;
    const session = this.repo.then((r) => r.conn.beginBackup({ source, host }));
    session.catch(() => undefined); // a refused spare is opened again by the push that takes it, which reports the error
    this.spares.set(key, { session, opened: this.clock.now() });
  }

  /** How many spares are kept (open or opening). */
  get size(): number {
    return this.spares.size;
  }

  /** Close every spare (a push failed: keepd may have dropped them); later pushes open new ones. */
  async discard(): Promise<void> {
    const all = [...this.spares.values()];
    this.spares.clear();
    await Promise.allSettled(all.map((s) => abortQuietly(s.session)));
  }

  /** Close every spare and open none after this (the connection is closing). */
  close(): Promise<void> {
    this.closed = true;
    return this.discard();
  }
}

async function abortQuietly(session: Promise<BackupSession>): Promise<void> {
  await session.then((s) => s.abort(), () => undefined).catch(() => undefined);
}
