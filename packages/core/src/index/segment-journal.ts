import fs from 'node:fs';
import path from 'node:path';
import type { Database } from 'lmdb';
import { STATE_TABLES } from '../formats.js';
import { STATE_FILE } from '../state-store.js';

/** A published pack that no stored index segment names yet (index/segment-log.ts). */
export interface JournaledPack {
  id: string;
  size: number;
}

/** Where the packs waiting for a segment are recorded durably, so a crash does not leave them to their trailers for good. */
export interface SegmentJournal {
  record(p: JournaledPack): Promise<void>;
  clear(ids: string[]): Promise<void>;
  /** every recorded pack, in id order */
  pending(): JournaledPack[];
}

/**
 * state.mdb `index-segment-pending` (keepd's repositories: an agent's own has
 * no state.mdb and keeps its pending packs in memory only): a pack goes in
 * when it is published and out when a stored segment names it; what a killed
 * process left is written as a segment by the next keepd (IndexSegmentLog.recover).
 */
export function stateSegmentJournal(dir: string, database: (name: string) => Database<{ size: number }, string>): SegmentJournal | undefined {
  if (!fs.existsSync(path.join(dir, STATE_FILE))) return undefined;
  let db: Database<{ size: number }, string> | undefined;
  const open = () => (db ??= database(STATE_TABLES.indexSegmentPending));
  return {
    record: async (p) => void (await open().put(p.id, { size: p.size })),
    clear: async (ids) => {
      const d = open();
      await d.transaction(() => {
        for (const id of ids) d.remove(id);
      });
    },
    pending: () => [...open().getRange()].map(({ key, value }) => ({ id: key, size: value.size })),
  };
}
