import { Database, Id, Repository } from '@keep/core';

/**
 * Which sources "own" which blobs: a source owns a blob once one of its
 * sessions uploaded it (even when the server already had the bytes). Scoped
 * agents are answered "have it" only for blobs their source owns, so no agent
 * can probe whether another tenant stored a given chunk (the existence oracle
 * kopia's server has). Agents may read back only blobs their sources own.
 *
 * LMDB database "owners": key = blob id (32 bytes) || source (UTF-8), value = true.
 */
export class DedupScopeIndex {
  private readonly db: Database<true, Buffer>;

  constructor(repo: Repository) {
    this.db = repo.database<true, Buffer>('owners', { binaryKeys: true });
  }

  private key(id: Id, source: string): Buffer {
    return Buffer.concat([id, Buffer.from(source, 'utf8')]);
  }

  owns(source: string, id: Id): boolean {
    return this.db.get(this.key(id, source)) !== undefined;
  }

  ownedByAny(sources: string[], id: Id): boolean {
    return sources.some((s) => this.owns(s, id));
  }

  /** Record ownership in one transaction (called in batches, not per blob). */
  async record(source: string, ids: Iterable<Id>): Promise<void> {
    const keys = [...ids].map((id) => this.key(id, source));
    if (keys.length === 0) return;
    await this.db.transaction(() => {
      for (const k of keys) if (this.db.get(k) === undefined) this.db.put(k, true);
    });
  }
}
