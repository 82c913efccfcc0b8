import { KeepError } from '../errors.js';
import { decodeIndexSegment, encodeIndexSegment, newIndexSegmentName, type SegmentPack } from '../index/segment-format.js';
import { SEGMENT_ENTRIES, SEGMENT_PACKS } from '../index/segment-log.js';
import type { RepoStorage } from '../store/repo-storage.js';

/** A compacted segment is closed once it holds this many packs (or SEGMENT_ENTRIES entries). */
export const COMPACTED_SEGMENT_PACKS = 16 * SEGMENT_PACKS;

export interface SegmentCompaction {
  /** segments deleted because new ones hold what of them is still live */
  segments_replaced: number;
  segments_written: number;
}

/** The time a segment's name starts with (newIndexSegmentName): a replacement keeps its place in the rebuild's name order. */
const nameTime = (name: string) => Number(name.slice(0, 15)) || 0;

/**
 * Prune's last step: index segments (index/segment-format.ts) that name
 * packs now `gone` (deleted, or dropped from the index and waiting for their
 * deletion), and small ones (fewer than SEGMENT_PACKS packs: one per snapshot
 * commit adds up), are replaced by new segments holding their live packs
 * only. The new ones are stored first, then the old ones deleted: a crash
 * between leaves both, which a rebuild takes as it takes any duplicate (a
 * pack is indexed once). Memory holds one segment read and one being built
 * (at most COMPACTED_SEGMENT_PACKS packs or SEGMENT_ENTRIES entries). A
 * damaged segment is deleted (a rebuild ignores it anyway); one that could
 * not be read is kept for the next prune.
 *
 * `gone` must be computed from a pack listing taken after `names` was listed
 * (listIndexSegments first): a segment is written after its packs, so every
 * pack a listed segment names was stored before that listing.
 */
export async function compactIndexSegments(storage: RepoStorage, names: readonly string[], gone: (packId: string) => boolean): Promise<SegmentCompaction> {
  const replaced: string[] = [];
  let stale = false;
  let written = 0;
  let out: SegmentPack[] = [];
  let outEntries = 0;
  let outTime = 0;
  const write = async () => {
    if (out.length) await storage.putIndexSegment(newIndexSegmentName(outTime), encodeIndexSegment(out)), written++;
    out = [];
    outEntries = 0;
  };
  for (const name of names) {
    let packs: SegmentPack[];
    try {
      packs = decodeIndexSegment(await storage.readIndexSegment(name), name);
    } catch (e) {
      if (e instanceof KeepError && e.code === 'CORRUPT') replaced.push(name), (stale = true);
      continue;
    }
    const live = packs.filter((p) => !gone(p.id));
    if (live.length === packs.length && packs.length >= SEGMENT_PACKS) continue; // whole and full: kept as it is
    stale ||= live.length < packs.length;
    replaced.push(name);
    for (const p of live) {
      if (out.length === 0) outTime = nameTime(name);
      out.push(p);
      outEntries += p.entries.length;
      if (out.length >= COMPACTED_SEGMENT_PACKS || outEntries >= SEGMENT_ENTRIES) await write();
    }
  }
  // One small segment with nothing gone would only be rewritten as itself.
  if (replaced.length === 1 && !stale && written === 0) return { segments_replaced: 0, segments_written: 0 };
  if (replaced.length === 0) return { segments_replaced: 0, segments_written: 0 };
  await write();
  await storage.deleteIndexSegments(replaced);
  return { segments_replaced: replaced.length, segments_written: written };
}
