import fs from 'node:fs';
import path from 'node:path';
import type { Database } from 'lmdb';
import { STATE_TABLES } from '../formats.js';
import { STATE_FILE } from '../state-store.js';
import type { Repository } from '../repository.js';

/** A pack prune dropped from the index, waiting in the bucket until its delay passed. */
export interface PendingDeletion {
  /** when prune dropped it (repository clock, ms) */
  recorded: number;
  size: number;
}

/**
 * Pack deletions recorded first and executed later (object storage:
 * margins.ts PACK_DELETE_DELAY_MS). Prune drops a pack from the index and
 * records it here (state.mdb, which an index rebuild keeps); a later prune
 * deletes it from the bucket once the delay passed. A reader that looked a
 * blob up before a repack moved it still reads the old pack meanwhile; one
 * that comes after reads the new one. A pack indexed again meanwhile (a
 * rebuild from trailers adopted it) is kept and its record dropped.
 */
export class DelayedDeletions {
  private db?: Database<PendingDeletion, string>;

  /** An agent's local repository (no state.mdb, no delay) gets no state.mdb from this. */
  constructor(private readonly repo: Repository) {
    if (repo.storage.deleteDelayMs > 0 || fs.existsSync(path.join(repo.dir, STATE_FILE))) this.open();
  }

  private open(): Database<PendingDeletion, string> {
    this.db ??= this.repo.database<PendingDeletion>(STATE_TABLES.packDeletions);
    return this.db;
  }

  has(id: string): boolean {
    return this.db?.get(id) !== undefined;
  }

  count(): number {
    return this.db?.getCount() ?? 0;
  }

  /** Record packs already dropped from the index; the first record of a pack stands. */
  async record(packs: { id: string; size: number }[], now: number): Promise<void> {
    if (packs.length === 0) return;
    const db = this.open();
    await db.transaction(() => {
      for (const p of packs) if (db.get(p.id) === undefined) db.put(p.id, { recorded: now, size: p.size });
    });
  }

  /** Delete from the storage every pack recorded at or before `dueBy`; returns how many and their bytes. */
  async executeDue(dueBy: number): Promise<{ packs: number; bytes: number }> {
    if (!this.db) return { packs: 0, bytes: 0 };
    const db = this.db;
    const due: { id: string; size: number }[] = [];
    for (const { key, value } of db.getRange()) if (value.recorded <= dueBy) due.push({ id: key, size: value.size });
    // a pack indexed again meanwhile is kept (its record goes): neither deleted nor counted
    const gone = due.filter((p) => !this.repo.hasPack(p.id));
    // the records go only after the objects: a crash between leaves a record whose delete is simply repeated
    await this.repo.storage.deletePacks(gone.map((p) => p.id));
    await db.transaction(() => {
      for (const p of due) db.remove(p.id);
    });
    return { packs: gone.length, bytes: gone.reduce((n, p) => n + p.size, 0) };
  }
}
