import { Database, Id, Repository } from '@keep/core';

/**
 * Which sources "own" which blobs: a source owns a blob once one of its
 * sessions uploaded it (even when the server already had the bytes). Scoped
 * agents are answered "have it" only for blobs their source owns, so no agent
 * can probe whether another tenant stored a given chunk (the existence oracle
 * kopia's server has). Agents may read back only blobs their sources own.
 *
 * The source that first stored a blob is written into the blob's own index
 * record as a small number, its tag (a session's BlobWriter carries it), so
 * the common case costs no row. Every further owner, and a source that
 * uploaded bytes another writer indexed first, gets a row here:
 *
 *   state.mdb "source-tags": key = source name, value = tag (1, 2, ...; never reused)
 *   index.mdb "owners":      key = blob id (32 bytes) || source (UTF-8), value = true
 *
 * Ownership is a cache like the rest of the index: a rebuilt index derives
 * it again from the snapshots (ownership.ts). The tags are durable state.
 */
export class DedupScopeIndex {
  private readonly db: Database<true, Buffer>;
  private readonly tags: Database<number, string>;

  constructor(private readonly repo: Repository) {
    this.db = repo.indexDatabase<true, Buffer>('owners', { binaryKeys: true });
    this.tags = repo.database<number, string>('source-tags');
  }

  private key(id: Id, source: string): Buffer {
    return Buffer.concat([id, Buffer.from(source, 'utf8')]);
  }

  /** The source's tag, allocated on first use (sessions pass it to their BlobWriter). */
  async tagOf(source: string): Promise<number> {
    const known = this.tags.get(source);
    if (known !== undefined) return known;
    return this.tags.transaction(() => {
      const raced = this.tags.get(source);
      if (raced !== undefined) return raced;
      const tag = this.tags.getCount() + 1; // tags are never removed, so the count is the last one
      void this.tags.put(source, tag);
      return tag;
    });
  }

  private firstOwner(source: string, id: Id): boolean {
    const tag = this.tags.get(source);
    return tag !== undefined && this.repo.ownerOf(id) === tag;
  }

  owns(source: string, id: Id): boolean {
    return this.firstOwner(source, id) || this.db.get(this.key(id, source)) !== undefined;
  }

  ownedByAny(sources: string[], id: Id): boolean {
    return sources.some((s) => this.owns(s, id));
  }

  /** Record ownership in one transaction (called in batches, not per blob). */
  async record(source: string, ids: Iterable<Id>): Promise<void> {
    const list = [...ids];
    if (list.length === 0) return;
    await this.db.transaction(() => {
      for (const id of list) {
        if (this.firstOwner(source, id)) continue;
        const k = this.key(id, source);
        if (this.db.get(k) === undefined) void this.db.put(k, true);
      }
    });
  }
}
