import type { Database, RootDatabase } from 'lmdb';

/**
 * Source name -> owner tag (1, 2, ...; never reused), LMDB `source-tags`: the
 * small number a writer records in the blobs it is first to store, and that
 * keys a source's copies (copy-index.ts). keepd allocates one per source.
 */
export const SOURCE_TAGS_DB = 'source-tags';

export class SourceTags {
  private readonly db: Database<number, string>;

  constructor(private readonly env: RootDatabase) {
    this.db = env.openDB({ name: SOURCE_TAGS_DB });
  }

  /** The source's tag, if it has one (allocate makes one). */
  find(source: string): number | undefined {
    return this.db.get(source);
  }

  /** The source's tag, allocated on first use. */
  async allocate(source: string): Promise<number> {
    const known = this.db.get(source);
    if (known !== undefined) return known;
    return this.env.transaction(() => {
      const raced = this.db.get(source);
      if (raced !== undefined) return raced;
      const tag = this.db.getCount() + 1; // tags are never removed, so the count is the last one
      void this.db.put(source, tag);
      return tag;
    });
  }

  /** Every source with a tag: tag -> source name. */
  names(): Map<number, string> {
    const names = new Map<number, string>();
    for (const { key, value } of this.db.getRange()) names.set(value, key);
    return names;
  }
}
