import fs from 'node:fs';
import { parseBlob } from './blob/seal.js';
import type { BlobViews } from './copy-index.js';
import { Id, toHex } from './ids.js';
import type { BlobReader } from './index/blob-reader.js';
import type { BlobStore } from './index/blob-store.js';
import type { RepoStorage } from './store/repo-storage.js';
import type { SnapshotStore } from './snapshot/store.js';

export interface CheckOptions {
  /** re-hash every blob's stored bytes */
  readData?: boolean;
  /** re-hash this percentage of blobs (chosen at random) */
  readDataSubset?: number;
}

export interface CheckReport {
  ok: boolean;
  snapshots: number;
  packs: number;
  blobs: number;
  blobs_read: number;
  bytes_read: number;
  errors: string[];
  /** hex ids of blobs found damaged or missing */
  damaged_blobs: string[];
  orphan_packs: string[];
  /** packs prune dropped that wait out the deletion delay before leaving the storage (gc/delayed-deletions.ts); keepd's own check only */
  packs_pending_deletion?: number;
  unfinished_packs: number;
}

/** What check reads: one open repository's stores (Repository.check). */
export interface CheckTarget {
  index: BlobStore;
  snapshots: SnapshotStore;
  reader: BlobReader;
  views: BlobViews;
  storage: RepoStorage;
  /** the repository's tmp/, where unfinished packs lie */
  tmpDir: string;
  /** a pack prune dropped, waiting out its deletion delay (gc/delayed-deletions.ts): not an orphan */
  pendingDeletion?: (id: string) => boolean;
}

/** Structure, index against packs, storage hashes, snapshot closure. Needs no key. */
export async function checkRepository(t: CheckTarget, opts: CheckOptions = {}): Promise<CheckReport> {
  const report: CheckReport = {
    ok: true,
    snapshots: 0,
    packs: 0,
    blobs: 0,
    blobs_read: 0,
    bytes_read: 0,
    errors: [],
    damaged_blobs: [],
    orphan_packs: [],
    packs_pending_deletion: 0,
    unfinished_packs: 0,
  };
  const damaged = new Set<string>();
  const fail = (msg: string, blob?: string) => {
    report.errors.push(msg);
    if (blob && !damaged.has(blob)) damaged.add(blob), report.damaged_blobs.push(blob);
  };

  // Packs on disk against the packs the index knows.
  const sizes = new Map<string, number>();
  for (const p of await t.index.packFiles()) {
    sizes.set(p.id, p.size);
    if (!t.index.hasPack(p.id)) {
      if (t.pendingDeletion?.(p.id)) report.packs_pending_deletion = (report.packs_pending_deletion ?? 0) + 1;
      else report.orphan_packs.push(p.id);
    }
    try {
      await t.storage.readTrailer(p.id);
    } catch (e) {
      fail(`pack ${p.id}: ${(e as Error).message}`);
    }
  }
  report.packs = sizes.size;
  report.unfinished_packs = fs.readdirSync(t.tmpDir).filter((n) => n.endsWith('.pack.tmp')).length;

  // Every indexed blob is inside a pack that exists; its bytes hash right when read.
  const pct = opts.readData ? 100 : (opts.readDataSubset ?? 0);
  for (const [id, r, copyOf] of t.index.allRecords()) {
    report.blobs++;
    const hex = toHex(id);
    const view = copyOf === undefined ? t.views.primary : (x: Id) => (x.equals(id) ? { record: r, copyOf } : undefined);
    const size = sizes.get(r.pack);
    if (size === undefined) {
      fail(`blob ${hex}: its pack ${r.pack} is missing`, hex);
      continue;
    }
    if (r.offset + r.length > size) {
      fail(`blob ${hex}: pack ${r.pack} is truncated (${size} bytes, blob ends at ${r.offset + r.length})`, hex);
      continue;
    }
    if (pct > 0 && (pct >= 100 || Math.random() * 100 < pct)) {
      try {
        const b = await t.reader.readBlob(id, view);
        report.blobs_read++;
        report.bytes_read += b.length;
        const p = parseBlob(b);
        if (p.type !== r.type) fail(`blob ${hex}: stored type ${p.type} differs from the index's ${r.type}`, hex);
      } catch (e) {
        fail((e as Error).message, hex);
      }
    }
  }

  // Every snapshot's DAG is stored.
  for (const s of t.snapshots.list()) {
    report.snapshots++;
    try {
      const { missing } = await t.snapshots.closure(Buffer.from(s.root, 'hex'), t.views.ofSource(s.source));
      for (const m of missing) fail(`snapshot ${s.id}: blob ${m} is missing`, m);
    } catch (e) {
      fail(`snapshot ${s.id}: ${(e as Error).message}`);
    }
  }
  report.ok = report.errors.length === 0;
  return report;
}
