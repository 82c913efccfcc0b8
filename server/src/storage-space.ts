import { KeepError, spaceOf } from '@keep/core';
import type { Metrics } from './metrics.js';

/** `--min-free`: a size (512M, 2G, bytes) or a percentage of the file system (5%). */
export type MinFree = { bytes: number } | { percent: number };

export function parseMinFree(text: string): MinFree {
  const pct = /^(\d+(?:\.\d+)?)%$/.exec(text);
  if (pct && Number(pct[1]) < 100) return { percent: Number(pct[1]) };
  const size = /^(\d+)([KMGT]?)(?:i?B)?$/i.exec(text);
  if (size) return { bytes: Number(size[1]) * 1024 ** ' KMGT'.indexOf(size[2].toUpperCase() || ' ') };
  throw new KeepError('INVALID_ARGUMENT', `--min-free takes a size (512M, 2G) or a percentage of the disk (5%), not ${text}`);
}

/** The data directory's file system: free space as metrics, and the reserve below which no backup starts. */
export class StorageSpace {
  constructor(
    private readonly dir: string,
    private readonly minFree: MinFree,
  ) {}

  /** The reserve in bytes for a file system of `total` bytes. */
  reserveOf(total: number): number {
    return 'bytes' in this.minFree ? this.minFree.bytes : Math.ceil((total * this.minFree.percent) / 100);
  }

  /** RESOURCE_EXHAUSTED when free space is below the reserve. */
  requireReserve(): void {
    const { free, total } = spaceOf(this.dir);
    const reserve = this.reserveOf(total);
    if (free < reserve) {
      throw new KeepError('RESOURCE_EXHAUSTED', `repository disk full: ${free} bytes free in ${this.dir}, below keepd's reserve of ${reserve} bytes (--min-free); no new backup starts until space is freed (forget and prune old snapshots, or a larger disk)`);
    }
  }

  register(m: Metrics): void {
    m.gauge('keep_storage_free_bytes', 'Bytes free on the data directory\'s file system (for keepd)', () => spaceOf(this.dir).free);
    m.gauge('keep_storage_total_bytes', 'Size of the data directory\'s file system in bytes', () => spaceOf(this.dir).total);
    m.gauge('keep_storage_reserve_bytes', 'Free bytes below which keepd refuses new backup sessions (--min-free)', () => this.reserveOf(spaceOf(this.dir).total));
  }
}
