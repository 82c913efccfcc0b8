import type { Clock } from '../clock.js';
import type { RepoStorage } from '../store/repo-storage.js';
import type { JournaledPack, SegmentJournal } from './segment-journal.js';
import { encodeIndexSegment, newIndexSegmentName, type SegmentPack } from './segment-format.js';

/** A segment is written once this many published packs wait for one (and at every snapshot commit and on close). */
export const SEGMENT_PACKS = 64;
/**
 * ...or once this many blob entries wait (73 bytes each: ~7 MiB): a pack of
 * small blobs holds thousands, and the pending list and the segment are in memory.
 */
export const SEGMENT_ENTRIES = 100_000;
/**
 * A snapshot commit starts a segment only when none was started for this
 * long: a WAL archive commits a snapshot per 16 MiB segment, every few
 * seconds, and a segment per commit would make a rebuild read one object
 * per pack again (what a trailer costs). The packs waiting in between are
 * journaled (keepd) and written by SEGMENT_PACKS, the next commit past the
 * interval, or close.
 */
export const SEGMENT_COMMIT_INTERVAL_MS = 60_000;

/**
 * The packs this process published since its last index segment, written as
 * one segment (index/segment-format.ts) when SEGMENT_PACKS or
 * SEGMENT_ENTRIES are pending, at a snapshot commit (at most once per
 * SEGMENT_COMMIT_INTERVAL_MS, in the background), and on close. A pack
 * never waits for its segment: a failed write only leaves packs a rebuild
 * reads by their trailers. With a journal (keepd's state.mdb) the waiting
 * packs are also recorded durably, and `recover` writes the segment a killed
 * process never wrote. Writes go one at a time, in order.
 */
export class IndexSegmentLog {
  private pending: SegmentPack[] = [];
  private pendingEntries = 0;
  private writing: Promise<void> = Promise.resolve();
  /** when the last segment write started (clock ms) */
  private lastStarted = -Infinity;

  constructor(
    private readonly storage: RepoStorage,
    private readonly clock: Clock,
    private readonly journal: () => SegmentJournal | undefined,
    /** told when a segment could not be written (its packs fall back to trailers) */
    private readonly onError: (e: Error) => void = (e) => process.emitWarning(`could not write an index segment (a rebuild reads those packs' trailers): ${e.message}`),
  ) {}

  /**
   * Journal a pack about to be published (Repository.publishPack), before it
   * exists: a process killed right after the publish still has it recorded.
   * A journaled pack that never got published is dropped by `recover`.
   */
  async intend(p: JournaledPack): Promise<void> {
    try {
      await this.journal()?.record({ id: p.id, size: p.size });
    } catch (e) {
      this.onError(e as Error); // the pack is published all the same
    }
  }

  /** A journaled pack whose publish failed: it will never need a segment. */
  async abandon(id: string): Promise<void> {
    try {
      await this.journal()?.clear([id]);
    } catch {
      // recover drops it otherwise
    }
  }

  /** Record a published pack; starts a segment when enough wait. */
  add(p: SegmentPack): void {
    this.pending.push({ id: p.id, size: p.size, entries: p.entries });
    this.pendingEntries += p.entries.length;
    if (this.pending.length >= SEGMENT_PACKS || this.pendingEntries >= SEGMENT_ENTRIES) void this.flush();
  }

  /** A snapshot was committed: start a segment for the waiting packs unless one started within SEGMENT_COMMIT_INTERVAL_MS. Not awaited by the commit. */
  committed(): void {
    if (this.pending.length && this.clock.now() - this.lastStarted >= SEGMENT_COMMIT_INTERVAL_MS) void this.flush();
  }

  /** Resolves once the segment writes started so far are stored or failed (writes none of the waiting packs). */
  settled(): Promise<void> {
    return this.writing;
  }

  /** Write the pending packs as one segment (none when nothing waits); resolves once it and every earlier one are stored or failed. Never rejects. */
  flush(): Promise<void> {
    if (this.pending.length) this.lastStarted = this.clock.now();
    const packs = this.pending;
    this.pending = [];
    this.pendingEntries = 0;
    return this.write(packs);
  }

  private write(packs: SegmentPack[]): Promise<void> {
    this.writing = this.writing.then(async () => {
      if (packs.length === 0) return;
      try {
        await this.storage.putIndexSegment(newIndexSegmentName(this.clock.now()), encodeIndexSegment(packs));
        await this.journal()?.clear(packs.map((p) => p.id));
      } catch (e) {
        this.onError(e as Error);
      }
    });
    return this.writing;
  }

  /**
   * Write a segment for the packs the journal holds that this process did not
   * publish (a killed process's), reading their trailers: keepd calls it once
   * it holds the right to write. A pack never published, gone meanwhile
   * (pruned) or damaged only leaves the journal. Returns how many packs it wrote segments for
   * (a failed write is told to onError, and they stay in the journal).
   */
  async recover(): Promise<number> {
    const journal = this.journal();
    if (!journal) return 0;
    const mine = new Set(this.pending.map((p) => p.id));
    const left = journal.pending().filter((p) => !mine.has(p.id));
    let batch: SegmentPack[] = [];
    let entries = 0;
    let covered = 0;
    const unreadable: JournaledPack[] = [];
    for (const p of left) {
      try {
        batch.push({ id: p.id, size: p.size, entries: await this.storage.readTrailer(p.id) });
      } catch {
        unreadable.push(p);
        continue;
      }
      entries += batch[batch.length - 1].entries.length;
      if (batch.length >= SEGMENT_PACKS || entries >= SEGMENT_ENTRIES) (covered += batch.length), await this.write(batch), (batch = []), (entries = 0);
    }
    covered += batch.length;
    await this.write(batch);
    await journal.clear(unreadable.map((p) => p.id));
    return covered;
  }
}
