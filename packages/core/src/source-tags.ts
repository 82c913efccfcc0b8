import type { Database, RootDatabase } from 'lmdb';
import { STATE_TABLES } from './formats.js';

/**
 * Source name -> owner tag (1, 2, ...; never reused), LMDB `source-tags`: the
 * small number a writer records in the blobs it is first to store, and that
 * keys a source's copies (copy-index.ts). keepd allocates one per source.
 * Durable state (state.mdb): blob records and copies in the index refer to them.
 */
export const SOURCE_TAGS_DB = STATE_TABLES.sourceTags;

export class SourceTags {
  private db: Database<number, string> | undefined;

  /**
   * `state(create)`: the LMDB environment of the durable state (state.mdb:
   * tags outlive an index rebuild), or undefined where there is none yet and
   * `create` is false (an embedded repository that never allocated a tag).
   */
  constructor(private readonly state: (create: boolean) => RootDatabase | undefined) {}

  private table(create: boolean): Database<number, string> | undefined {
    if (!this.db) this.db = this.state(create)?.openDB({ name: SOURCE_TAGS_DB });
    return this.db;
  }

  /** The source's tag, if it has one (allocate makes one). */
  find(source: string): number | undefined {
    return this.table(false)?.get(source);
  }

  /** The source's tag, allocated on first use. */
  async allocate(source: string): Promise<number> {
    const db = this.table(true)!;
    const known = db.get(source);
    if (known !== undefined) return known;
    return db.transaction(() => {
      const raced = db.get(source);
      if (raced !== undefined) return raced;
      const tag = db.getCount() + 1; // tags are never removed, so the count is the last one
      void db.put(source, tag);
      return tag;
    });
  }

  /** Every source with a tag: tag -> source name. */
  names(): Map<number, string> {
    const names = new Map<number, string>();
    for (const { key, value } of this.table(false)?.getRange() ?? []) names.set(value, key);
    return names;
  }
}
