import fs from 'node:fs';
import path from 'node:path';
import { Clock } from '../clock.js';
import { KeepError } from '../errors.js';
import type { Copy } from '../copy-index.js';
import { fsyncDir } from '../fsutil.js';
import { acquireMaintenanceLock } from '../pid-lock.js';
import { StateStore, STATE_FILE } from '../state-store.js';
import { pausePoint } from '../test-pause.js';
import { checkLmdbFile } from './meta-check.js';
import { detachSharedEnv } from '../lmdb-shared-env.js';
import { INDEX_FILE, IndexTables, openIndexTables } from './tables.js';
import type { RepoStorage } from '../store/repo-storage.js';
import type { Snapshot } from '../snapshot/snapshot.js';
import type { PackEntry } from '../pack/format.js';
import { decodeIndexSegment } from './segment-format.js';

export interface RebuildReport {
  packs: number;
  blobs: number;
  damaged_packs: string[];
  /** index segments read whole (index/segment-format.ts) */
  segments: number;
  /** segments that could not be read or were damaged ("name: why"): their packs were read by trailer */
  damaged_segments: string[];
  /** packs indexed from a segment, without reading the pack */
  packs_from_segments: number;
  /** packs indexed from their own trailer: no segment named them (or one named them with another size) */
  packs_from_trailers: number;
  /** requests made to an object store during the rebuild, per operation (empty for a directory) */
  store_requests: Record<string, number>;
  /** where the index this rebuild replaced was moved (index.mdb.damaged-TIME or index.mdb.old-TIME), if there was one */
  replaced?: string;
}

/** The snapshot table made to match the stored snapshots/*.json: records written but not indexed (a crash between the two steps) are adopted, index records without one dropped. */
export async function loadSnapshotFiles(t: Pick<IndexTables, 'env' | 'snaps'>, storage: RepoStorage): Promise<void> {
  const ids = await storage.snapshotIds();
  if (ids.length === t.snaps.getCount()) return;
  const stored = new Set(ids);
  const adopt = new Map<string, Snapshot>();
  for (const id of stored) if (!t.snaps.get(id)) adopt.set(id, JSON.parse(await storage.readSnapshot(id)));
  await t.env.transaction(() => {
    for (const [id, snap] of adopt) if (!t.snaps.get(id)) t.snaps.put(id, snap);
    for (const { key } of t.snaps.getRange()) if (!stored.has(key)) t.snaps.remove(key);
  });
}

function removeLmdbFile(file: string): void {
  fs.rmSync(file, { force: true });
  fs.rmSync(`${file}-lock`, { force: true });
}

/** Requests per operation the storage made so far (object storage; none for a directory). */
function requestCounts(storage: RepoStorage): Record<string, number> {
  return Object.fromEntries(storage.requestStats().map((s) => [s.op, s.requests]));
}

/**
 * Index every stored pack (and the packs that appear meanwhile) and every snapshot file into `t`: first from the
 * index segments (index/segment-format.ts), in name order, taking only packs the storage lists with the size the
 * segment records (prune deletes packs a segment still names); then every listed pack no segment covered, by its
 * trailer (every one with `trailersOnly`). A damaged segment is reported and its packs fall back to their trailers.
 * `copies`: the per-source copies the old index knew. Neither packs nor segments say which source stored a blob, so
 * the bytes at a copy's place are never made any blob's primary (a source's copy must not become what every
 * other source reads); a copy whose place still holds its blob is kept, one whose pack is gone is dropped
 * (its source stores the blob again).
 */
async function fill(t: IndexTables, storage: RepoStorage, clock: Clock, copies: readonly Copy[], trailersOnly: boolean): Promise<Omit<RebuildReport, 'replaced'>> {
  const copyAt = new Map(copies.map((c) => [`${c.record.pack}:${c.record.offset}`, c]));
  const requestsBefore = requestCounts(storage);
  const damaged: string[] = [];
  const damagedSegments: string[] = [];
  let blobs = 0;
  let segments = 0;
  let fromSegments = 0;
  let fromTrailers = 0;
  const now = clock.now();
  const done = new Set<string>();
  const index = (id: string, size: number, entries: PackEntry[]) =>
    t.env.transaction(() => {
      t.packs.put(id, { size, blobs: entries.length, created: now });
      for (const e of entries) {
        const copy = copyAt.get(`${id}:${e.offset}`);
        if (copy) {
          if (copy.id.equals(e.id)) void t.copies.put(e.id, copy.tag, { pack: id, offset: e.offset, length: e.length, hash: e.hash, type: e.type, seen: now });
          continue;
        }
        if (t.blobs.has(e.id)) continue;
        t.blobs.put(e.id, { pack: id, offset: e.offset, length: e.length, hash: e.hash, type: e.type, seen: now });
        blobs++;
      }
    });

  const names = trailersOnly ? [] : await storage.listIndexSegments();
  if (names.length) {
    const listed = new Map((await storage.listPacks()).map((p) => [p.id, p.size]));
    for (const name of names) {
      let packs;
      try {
        packs = decodeIndexSegment(await storage.readIndexSegment(name), name);
      } catch (e) {
        damagedSegments.push(`${name}: ${(e as Error).message}`);
        continue;
      }
      segments++;
      for (const p of packs) {
        if (done.has(p.id) || listed.get(p.id) !== p.size) continue;
        done.add(p.id);
        await index(p.id, p.size, p.entries);
        fromSegments++;
      }
    }
  }
  await pausePoint('rebuild');
  // Writers go on during a rebuild (into the index being replaced): scan again until no new pack appears, so
  // only a pack renamed in the last instant before the swap is left unindexed (prune adopts it, never deletes it).
  for (;;) {
    const fresh = (await storage.listPacks()).filter((p) => !done.has(p.id));
    if (fresh.length === 0) break;
    for (const p of fresh) {
      done.add(p.id);
      let entries;
      try {
        entries = await storage.readTrailer(p.id);
      } catch (e) {
        damaged.push(`${p.id}: ${(e as Error).message}`);
        continue;
      }
      fromTrailers++;
      await index(p.id, p.size, entries);
    }
  }
  await loadSnapshotFiles(t, storage);
  await t.meta.put('built', true);
  const requests = requestCounts(storage);
  const store_requests = Object.fromEntries(Object.entries(requests).map(([op, n]) => [op, n - (requestsBefore[op] ?? 0)]));
  return {
    packs: fromSegments + fromTrailers,
    blobs,
    damaged_packs: damaged,
    segments,
    damaged_segments: damagedSegments,
    packs_from_segments: fromSegments,
    packs_from_trailers: fromTrailers,
    store_requests,
  };
}

/**
 * Rebuild `dir`'s index from its pack trailers and snapshot files without
 * opening the current index.mdb (it may be damaged): under the maintenance
 * lock (no prune sees a half-built index, no two rebuilds race), into
 * index.mdb.rebuild, then the old file is moved aside and the new one
 * renamed into place. A crash at any point leaves the old index or the new
 * one at index.mdb, never a partial one. `copies`: what the old index knew of
 * per-source copies (see fill), where it could be read.
 */
export async function rebuildIndexFile(dir: string, clock: Clock, storage: RepoStorage, copies: readonly Copy[] = [], fromTrailers = false): Promise<RebuildReport> {
  const lock = acquireMaintenanceLock(dir, 'rebuild-index');
  try {
    const file = path.join(dir, INDEX_FILE);
    const aside = `${file}.rebuild`;
    removeLmdbFile(aside); // a crashed rebuild's leftovers
    const t = openIndexTables(aside);
    let report: RebuildReport;
    try {
      report = await fill(t, storage, clock, copies, fromTrailers);
    } finally {
      await t.close();
    }
    const state = checkLmdbFile(file);
    if (state.kind !== 'missing') {
      report.replaced = `${INDEX_FILE}.${state.kind === 'damaged' ? 'damaged' : 'old'}-${new Date(clock.now()).toISOString().replace(/[:.]/g, '-')}`;
      fs.renameSync(file, path.join(dir, report.replaced));
    }
    // The old lock file describes the old file's readers: the new file starts with none.
    fs.rmSync(`${file}-lock`, { force: true });
    detachSharedEnv(file); // this process's next open maps the new file, not a handle of the old one
    fs.renameSync(aside, file);
    fs.rmSync(`${aside}-lock`, { force: true });
    fsyncDir(dir);
    return report;
  } finally {
    lock.release();
  }
}

/**
 * Repository.rebuild (`keepd rebuild-index`): rebuildIndexFile without opening
 * the current index as a repository. Server state still kept in an index
 * written before state.mdb existed moves out first, when that index passes
 * the meta-page check.
 */
export async function rebuildClosedIndex(dir: string, clock: Clock, storage: RepoStorage, copies?: readonly Copy[], fromTrailers = false): Promise<RebuildReport> {
  const file = path.join(dir, INDEX_FILE);
  if (!fs.existsSync(path.join(dir, STATE_FILE)) && checkLmdbFile(file).kind === 'ok') {
    const t = openIndexTables(file);
    try {
      if (StateStore.hasLegacyTables(t.env)) await StateStore.open(dir, t.env).close();
    } finally {
      await t.close();
    }
  }
  return rebuildIndexFile(dir, clock, storage, copies, fromTrailers);
}

/**
 * Before LMDB maps index.mdb (LMDB crashes the process on a damaged file):
 * a lost or damaged index is rebuilt from the packs and snapshot files,
 * aside, then swapped in; with `indexRepairHint` (keepd) a damaged one fails
 * the open instead (Repository.open's RepositoryOptions).
 */
export async function checkIndexFile(dir: string, clock: Clock, opts: { indexRepairHint?: string; onIndexRebuilt?: (message: string) => void }, storage: RepoStorage): Promise<void> {
  const index = checkLmdbFile(path.join(dir, INDEX_FILE));
  if (index.kind === 'damaged' && opts.indexRepairHint) throw new KeepError('CORRUPT', `${path.join(dir, INDEX_FILE)} is damaged (${index.reason}): ${opts.indexRepairHint}`);
  if (index.kind !== 'ok') {
    const r = await rebuildIndexFile(dir, clock, storage);
    if (index.kind === 'damaged') opts.onIndexRebuilt?.(`${INDEX_FILE} was damaged (${index.reason}): rebuilt from the packs (${r.blobs} blobs); the damaged file is ${r.replaced}`);
  }
}
