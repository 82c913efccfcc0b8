import type { Clock } from '../clock.js';
import type { RepoStorage } from '../store/repo-storage.js';
import { encodeIndexSegment, newIndexSegmentName, type SegmentPack } from './segment-format.js';

/** A segment is written once this many published packs wait for one (and at every snapshot commit and on close). */
export const SEGMENT_PACKS = 64;
/**
 * ...or once this many blob entries wait (73 bytes each: ~7 MiB): a pack of
 * small blobs holds thousands, and the pending list and the segment are in memory.
 */
export const SEGMENT_ENTRIES = 100_000;

/**
 * The packs this process published since its last index segment, written as
 * one segment (index/segment-format.ts) when SEGMENT_PACKS or
 * SEGMENT_ENTRIES are pending, at a snapshot commit, and on close. A pack
 * never waits for its segment: a crash or a failed write only leaves packs a
 * rebuild reads by their trailers. Writes go one at a time, in order.
 */
export class IndexSegmentLog {
  private pending: SegmentPack[] = [];
  private pendingEntries = 0;
  private writing: Promise<void> = Promise.resolve();

  constructor(
    private readonly storage: RepoStorage,
    private readonly clock: Clock,
    /** told when a segment could not be written (its packs fall back to trailers) */
    private readonly onError: (e: Error) => void = (e) => process.emitWarning(`could not write an index segment (a rebuild reads those packs' trailers): ${e.message}`),
  ) {}

  /** Record a published pack (Repository.publishPack); starts a segment when enough wait. */
  add(p: SegmentPack): void {
    this.pending.push({ id: p.id, size: p.size, entries: p.entries });
    this.pendingEntries += p.entries.length;
    if (this.pending.length >= SEGMENT_PACKS || this.pendingEntries >= SEGMENT_ENTRIES) void this.flush();
  }

  /** Write the pending packs as one segment (none when nothing waits); resolves once it and every earlier one are stored or failed. Never rejects. */
  flush(): Promise<void> {
    const packs = this.pending;
    this.pending = [];
    this.pendingEntries = 0;
    this.writing = this.writing.then(async () => {
      if (packs.length === 0) return;
      try {
        await this.storage.putIndexSegment(newIndexSegmentName(this.clock.now()), encodeIndexSegment(packs));
      } catch (e) {
        this.onError(e as Error);
      }
    });
    return this.writing;
  }
}
