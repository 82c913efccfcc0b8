import { BlobView, Database, Id, KEEPD_INDEX_TABLES, Repository } from '@keep/core';

/**
 * Which sources "own" which blobs. Scoped agents are answered "have it" only
 * for blobs their source owns, so no agent can probe whether another tenant
 * stored a given chunk (the existence oracle kopia's server has), and read
 * back only bytes their own sources stored.
 *
 * A source owns a blob when it stored the first copy (the source's tag, kept
 * by the engine's "source-tags" table, is in the blob's own index record, so
 * the common case costs no row), when it stored its own copy (the engine's
 * "copies" table: a source-scoped session that uploads an id it does not own
 * stores its bytes as its copy, never gains the first copy), or when an
 * unscoped session of it (a token with --dedup repository, which trusts the
 * other tenants) was told "have it" or indexed bytes another writer indexed
 * first; those get a row here:
 *
 *   index.mdb "owners": key = blob id (32 bytes) || source (UTF-8), value = true
 *
 * Ownership is a cache like the rest of the index: a rebuilt index derives
 * it again from the snapshots (ownership.ts). The tags are durable state
 * (state.mdb, source-tags.ts).
 */
export class DedupScopeIndex {
  private readonly db: Database<true, Buffer>;

  constructor(private readonly repo: Repository) {
    this.db = repo.indexDatabase<true, Buffer>(KEEPD_INDEX_TABLES.owners, { binaryKeys: true });
  }

  private key(id: Id, source: string): Buffer {
    return Buffer.concat([id, Buffer.from(source, 'utf8')]);
  }

  /** The source's tag, allocated on first use (sessions pass it to their BlobWriter). */
  tagOf(source: string): Promise<number> {
    return this.repo.sourceTags.allocate(source);
  }

  private firstOwner(source: string, id: Id): boolean {
    const tag = this.repo.sourceTags.find(source);
    return tag !== undefined && this.repo.ownerOf(id) === tag;
  }

  /** What `source` may see of each blob: its copy, else the first copy if it owns that (closure walks and reads). */
  view(source: string): BlobView {
    const tag = this.repo.sourceTags.find(source);
    if (tag === undefined) return () => undefined; // a source that never stored anything owns nothing
    return this.repo.views.scoped(tag, (id) => this.db.get(this.key(id, source)) !== undefined);
  }

  /**
   * `owns` for one writer session of `source`, whose tag is allocated
   * (sessions.ts): the tag is read once (tags never change), not per blob.
   */
  ownsFor(source: string, tag: number): (id: Id) => boolean {
    const name = Buffer.from(source, 'utf8');
    const shared = (id: Id) => this.db.get(Buffer.concat([id, name])) !== undefined;
    return this.repo.views.owns(tag, shared);
  }

  /** What any of `sources` may see: the first of them that owns each blob. */
  viewOfAny(sources: string[]): BlobView {
    const views = sources.map((s) => this.view(s));
    return (id) => {
      for (const v of views) {
        const at = v(id);
        if (at) return at;
      }
      return undefined;
    };
  }

  /**
   * Record ownership in one transaction (called in batches, not per blob); none, and no disk sync, when every row exists.
   * The source gets its tag first: view() counts no row of a source without one (its tag lost with state.mdb, say).
   */
  async record(source: string, ids: Iterable<Id>): Promise<void> {
    await this.tagOf(source);
    const rows = [...ids].filter((id) => !this.firstOwner(source, id) && this.db.get(this.key(id, source)) === undefined);
    if (rows.length === 0) return;
    await this.db.transaction(() => {
      for (const id of rows) {
        const k = this.key(id, source);
        if (this.db.get(k) === undefined) void this.db.put(k, true);
      }
    });
  }
}
