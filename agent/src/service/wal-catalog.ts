import { Clock, PgWal, pgCatalog } from '@keep/core';
import { usableSnapshots } from '../repo/authentic.js';
import type { Unlocked } from '../repo/open.js';

/** A source's names are listed afresh at least this often, whatever this agent pushed meanwhile. */
export const CATALOG_MAX_AGE_MS = 60_000;

interface Names {
  names: Set<string>;
  listed: number;
}

/**
 * The names of the WAL files archived in each source, for the resident
 * archiver: a push asked "which copies of this name exist?" by listing every
 * snapshot of the source, which grew with the archive (12 ms at first, 250 ms
 * after a few hundred segments). The agent is its sources' WAL writer, so
 * after one listing it knows which names exist: a name it has not seen has no
 * copy, and is pushed without a listing. A name it has seen (PostgreSQL
 * retrying after a crash, a conflict) is always listed afresh, so "already
 * archived" is never answered from memory (a copy may have been forgotten
 * since). What another writer (a direct push) adds is seen at the next
 * listing: at most CATALOG_MAX_AGE_MS later, or when the connection is renewed.
 */
export class WalCatalog {
  private readonly sources = new Map<string, Names>();

  constructor(private readonly clock: Clock) {}

  /**
   * The archived copies of `name` in `source` (none for a name known absent),
   * asked by a push that is about to store it: the name counts as seen from
   * now on, whatever becomes of that push, so its next push lists afresh.
   */
  async copies(repo: Unlocked, source: string, name: string): Promise<PgWal[]> {
    const known = this.sources.get(source);
    if (known && !known.names.has(name) && this.clock.now() - known.listed < CATALOG_MAX_AGE_MS) {
      known.names.add(name);
      return [];
    }
    const listed = this.clock.now();
    const all = pgCatalog(usableSnapshots(repo.keys, await repo.conn.snapshots({ source }))).wal;
    const names = new Set(all.map((w) => w.name));
    names.add(name);
    this.sources.set(source, { names, listed });
    return all.filter((w) => w.name === name);
  }

  /** Forget everything (a new connection, perhaps to a repository changed meanwhile). */
  clear(): void {
    this.sources.clear();
  }
}
