import type { Database } from 'lmdb';
import { ScratchEnv } from '../dag/scratch-env.js';
import { SEEN_SET_SPILL_AT } from '../dag/seen-set.js';
import type { PackRecord } from '../index/tables.js';

/** A pack's size and what of it the index still points at. */
export interface PackLiveness {
  size: number;
  liveBlobs: number;
  liveBytes: number;
}

export interface PackUsageOptions {
  /** leave out packs recorded at or after this time (index/blob-store.ts says why) */
  createdBefore?: number;
  /** per-pack counters kept in a V8 Map before they move to a scratch file */
  spillAt?: number;
  /** where the scratch file goes (a repository's tmp/) */
  dir?: string;
}

/**
 * Live blobs and bytes per pack, counted over every index record (prune's
 * step 4), in bounded memory: counters sit in a Map of at most `spillAt`
 * packs, which is merged into a scratch LMDB table (scratch-env.ts) each time
 * it fills. Iterate it for the packs `createdBefore` keeps; close() it after.
 */
export class PackUsage implements Iterable<[string, PackLiveness]> {
  private counts = new Map<string, { blobs: number; bytes: number }>();
  private scratch: ScratchEnv | undefined;
  private table: Database<Buffer, Buffer> | undefined;
  private packCount = 0;

  private constructor(
    private readonly packs: () => Iterable<{ key: string; value: PackRecord }>,
    private readonly opts: PackUsageOptions,
  ) {}

  /** Count `records` (each one's pack and stored length) against `packs` (the index's packs table). */
  static count(packs: () => Iterable<{ key: string; value: PackRecord }>, records: Iterable<{ pack: string; length: number }>, opts: PackUsageOptions = {}): PackUsage {
    const u = new PackUsage(packs, opts);
    for (const { value } of packs()) if (u.kept(value)) u.packCount++;
    const spillAt = opts.spillAt ?? SEEN_SET_SPILL_AT;
    for (const r of records) {
      const c = u.counts.get(r.pack);
      if (c) c.blobs++, (c.bytes += r.length);
      else u.counts.set(r.pack, { blobs: 1, bytes: r.length });
      if (u.counts.size > spillAt) u.flush();
    }
    if (u.scratch) u.flush();
    return u;
  }

  /** How many packs iteration yields. */
  get size(): number {
    return this.packCount;
  }

  *[Symbol.iterator](): Iterator<[string, PackLiveness]> {
    for (const { key, value } of this.packs()) {
      if (!this.kept(value)) continue;
      const c = this.countOf(key);
      yield [key, { size: value.size, liveBlobs: c.blobs, liveBytes: c.bytes }];
    }
  }

  *values(): Generator<PackLiveness> {
    for (const [, u] of this) yield u;
  }

  close(): void {
    this.scratch?.close();
    this.scratch = this.table = undefined;
    this.counts.clear();
  }

  private kept(p: PackRecord): boolean {
    return this.opts.createdBefore === undefined || p.created < this.opts.createdBefore;
  }

  private countOf(pack: string): { blobs: number; bytes: number } {
    const none = { blobs: 0, bytes: 0 };
    if (!this.table) return this.counts.get(pack) ?? none;
    const v = this.table.get(Buffer.from(pack));
    return v ? { blobs: v.readDoubleBE(0), bytes: v.readDoubleBE(8) } : none;
  }

  /** Add the Map's counters into the scratch table (key-sorted, one transaction: at most `spillAt` packs). */
  private flush(): void {
    this.scratch ??= ScratchEnv.open(this.opts.dir);
    this.table ??= this.scratch.table('usage');
    const table = this.table;
    const entries = [...this.counts].map(([pack, c]) => ({ key: Buffer.from(pack), c })).sort((a, b) => Buffer.compare(a.key, b.key));
    this.counts.clear();
    this.scratch.write(() => {
      for (const { key, c } of entries) {
        const old = table.get(key);
        const v = Buffer.allocUnsafe(16);
        v.writeDoubleBE(c.blobs + (old ? old.readDoubleBE(0) : 0), 0);
        v.writeDoubleBE(c.bytes + (old ? old.readDoubleBE(8) : 0), 8);
        table.putSync(key, v);
      }
    });
  }
}
