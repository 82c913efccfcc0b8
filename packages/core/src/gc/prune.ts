import fs from 'node:fs';
import path from 'node:path';
import { Id, toHex } from '../ids.js';
import { GC_CLOCK_SLACK_MS, GC_GRACE_MS, ORPHAN_PACK_MIN_AGE_MS } from '../margins.js';
import { PackWriter } from '../pack/writer.js';
import { BlobType } from '../blob/format.js';
import { parseBlob } from '../blob/seal.js';
import { acquireMaintenanceLock } from '../pid-lock.js';
import { REPO_DIRS } from '../formats.js';
import { newSeenSet, SeenSet, SeenSetOptions } from '../dag/seen-set.js';
import { walkDag } from '../dag/walk.js';
import type { BlobView, Repository } from '../repository.js';
import { pausePoint } from '../test-pause.js';
import { DelayedDeletions } from './delayed-deletions.js';
import { compactIndexSegments } from './segment-compaction.js';

/**
 * Garbage collection and repacking, safe while backups run. No lock stops
 * writers; the rules that make that safe:
 *
 * 1. Mark: everything reachable from every snapshot, and from the parent of
 *    every open session (forget refuses to remove those), walking tree edges;
 *    a subtree shared by many snapshots is walked once.
 * 2. Cutoff = min(prune start - GC_GRACE_MS, start of the oldest open
 *    session) - GC_CLOCK_SLACK_MS. A session's blobs are all either uploaded
 *    or answered "have it" during the session (both renew the blob's `seen`,
 *    so seen >= session start > cutoff), or come from its parent snapshot
 *    (marked). So a blob is collectable only if unmarked and seen < cutoff.
 * 3. Sweep: bounded LMDB transactions (index/blob-store.ts sweepBlobs), each
 *    re-reading its candidates and skipping any whose `seen` moved past the
 *    cutoff since the mark (a session touched it), and each bumping the GC
 *    epoch, so "complete" marks on trees made before any of them are
 *    re-proven by the next commit's closure walk.
 * 4. Repack: live blobs of sparse packs are copied into a new pack, fsynced,
 *    then the index is switched in one transaction, then old packs deleted.
 *    A reader that looked up the old location retries once (Repository.readBlob).
 *    Crash at any point: either the old pack is still indexed, or the new one
 *    is and the old one is an orphan the next prune deletes.
 * 5. Orphan packs (never indexed: a crash between rename and index) and tmp
 *    packs are deleted only when older than ORPHAN_PACK_MIN_AGE_MS and than
 *    the cutoff (so never one an open session may still be filling), and an
 *    orphan only when its trailer is damaged or every blob in it is indexed
 *    elsewhere; otherwise it is adopted (Repository.adoptPack).
 * 6. Delayed deletion (object storage; `deleteDelayMs`, margins.ts
 *    PACK_DELETE_DELAY_MS): the packs of 4 and 5 leave the index at once but
 *    are only recorded (gc/delayed-deletions.ts); each prune first deletes
 *    those recorded longer ago than the delay, so a read that looked a blob
 *    up before a repack still finds the old pack.
 * 7. Index segments (an accelerator for rebuilds, never needed by a pack):
 *    those naming packs 4-6 removed are rewritten without them
 *    (gc/segment-compaction.ts), new ones stored before old ones go.
 * The live set, the candidates and the per-pack counts spill to scratch
 * LMDB files in the repository's tmp/ once they outgrow `spillAt` entries
 * (dag/seen-set.ts, gc/pack-usage.ts): memory stays bounded whatever the
 * blob count, past V8's 2^24-entry Set and Map.
 * Prune and index rebuilds never run at once (the maintenance lock,
 * pid-lock.ts); backups never wait for either.
 *
 * Per-source copies (copy-index.ts): each snapshot is walked through its own
 * source's bytes (a copy's tree may list other edges than the primary's when
 * one of them is garbage an attacker stored first), so liveness is per
 * record: a source's copy lives while a snapshot of that source reaches it,
 * the primary while a snapshot reading the primary does; the rest is swept
 * by the same cutoff rule, and repacks move copies like any blob.
 */
export interface PruneOptions {
  /** repack packs whose live bytes are below this fraction (0..1) */
  repackBelow?: number;
  dryRun?: boolean;
  /** entries kept in V8 collections before the mark set, candidates and pack counts spill to disk (tests force it low) */
  spillAt?: number;
  /** records removed per sweep transaction (default SWEEP_BATCH; tests force it low) */
  sweepBatch?: number;
  /** how long dropped packs stay in the storage (default: the storage's, RepoStorage.deleteDelayMs) */
  deleteDelayMs?: number;
}

export interface PruneReport {
  dry_run: boolean;
  snapshots: number;
  open_sessions: number;
  cutoff: string;
  blobs_before: number;
  blobs_live: number;
  blobs_removed: number;
  bytes_removed: number;
  blobs_kept_recent: number;
  packs_before: number;
  packs_deleted: number;
  packs_repacked: number;
  bytes_repacked: number;
  orphan_packs_deleted: number;
  /** orphan packs indexed because they hold blobs the index lacks (an index that lost writes) */
  orphan_packs_adopted: number;
  tmp_files_deleted: number;
  /** packs dropped by this or an earlier prune that still wait out the deletion delay */
  packs_pending_deletion: number;
  /** packs recorded by earlier prunes, deleted from the storage now that their delay passed */
  delayed_packs_deleted: number;
  delayed_bytes_deleted: number;
  /** index segments naming packs now gone (or small ones) replaced by new ones with the live packs (gc/segment-compaction.ts) */
  index_segments_replaced: number;
  index_segments_written: number;
  bytes_before: number;
  bytes_after: number;
  duration_s: number;
}

export const DEFAULT_REPACK_BELOW = 0.5;

export async function prune(repo: Repository, opts: PruneOptions = {}): Promise<PruneReport> {
  const started = repo.clock.now();
  const lock = acquireMaintenanceLock(repo.dir, 'prune');
  try {
    return await runPrune(repo, opts, started);
  } finally {
    lock.release();
  }
}

async function runPrune(repo: Repository, opts: PruneOptions, started: number): Promise<PruneReport> {
  const sessions = repo.liveSessions(started);
  const oldestSession = sessions.length ? sessions[0].started : Infinity;
  const cutoff = Math.min(started - GC_GRACE_MS, oldestSession) - GC_CLOCK_SLACK_MS;
  const before = { bytes: repo.storedBytes(), blobs: repo.blobCount(), packs: repo.packCount() };

  // 1. Mark.
  const snapshots = repo.snapshots();
  const roots = snapshots.map((s) => ({ root: s.root, source: s.source }));
  for (const s of sessions) {
    const parent = s.parent ? repo.getSnapshot(s.parent) : undefined;
    if (parent) roots.push({ root: parent.root, source: parent.source });
  }
  const scratch = { spillAt: opts.spillAt, dir: path.join(repo.dir, REPO_DIRS.tmp) };
  const live = newSeenSet(scratch);
  const candidates = newSeenSet(scratch);
  try {
    await mark(repo, roots, live, scratch);
    return await collect(repo, opts, started, { cutoff, snapshots: snapshots.length, sessions: sessions.length, before, live, candidates });
  } finally {
    live.close();
    candidates.close();
  }
}

async function collect(
  repo: Repository,
  opts: PruneOptions,
  started: number,
  m: { cutoff: number; snapshots: number; sessions: number; before: { bytes: number; blobs: number; packs: number }; live: SeenSet; candidates: SeenSet },
): Promise<PruneReport> {
  const { cutoff, live, candidates } = m;
  const repackBelow = opts.repackBelow ?? DEFAULT_REPACK_BELOW;
  const { bytes: bytesBefore, blobs: blobsBefore, packs: packsBefore } = m.before;

  // 2. Candidates: unmarked and not seen since the cutoff (primaries and copies alike).
  const { keptRecent, bytesRemoved } = selectCandidates(repo, live, cutoff, candidates);

  const report: PruneReport = {
    dry_run: Boolean(opts.dryRun),
    snapshots: m.snapshots,
    open_sessions: m.sessions,
    cutoff: new Date(cutoff).toISOString(),
    blobs_before: blobsBefore,
    blobs_live: live.size,
    blobs_removed: candidates.size,
    bytes_removed: bytesRemoved,
    blobs_kept_recent: keptRecent,
    packs_before: packsBefore,
    packs_deleted: 0,
    packs_repacked: 0,
    bytes_repacked: 0,
    orphan_packs_deleted: 0,
    orphan_packs_adopted: 0,
    tmp_files_deleted: 0,
    packs_pending_deletion: 0,
    delayed_packs_deleted: 0,
    delayed_bytes_deleted: 0,
    index_segments_replaced: 0,
    index_segments_written: 0,
    bytes_before: bytesBefore,
    bytes_after: bytesBefore,
    duration_s: 0,
  };
  const delay = opts.deleteDelayMs ?? repo.storage.deleteDelayMs;
  const deletions = new DelayedDeletions(repo);
  if (opts.dryRun) {
    report.packs_pending_deletion = deletions.count();
    report.duration_s = (repo.clock.now() - started) / 1000;
    return report;
  }
  // What earlier prunes recorded and has waited long enough goes first.
  const due = await deletions.executeDue(started - delay);
  report.delayed_packs_deleted = due.packs;
  report.delayed_bytes_deleted = due.bytes;
  /** a pack out of the index leaves the storage now, or after the delay */
  const removePacks = async (packs: { id: string; size: number }[]) => {
    if (delay > 0) await deletions.record(packs, repo.clock.now());
    else await repo.storage.deletePacks(packs.map((p) => p.id));
  };

  // 3. Sweep (bounded transactions; each re-checks `seen` and bumps the epoch).
  report.blobs_removed = await repo.sweepBlobs(recordsOf(candidates), cutoff, opts.sweepBatch);

  // 4. Packs: delete empty ones, repack sparse ones. Packs younger than the
  // cutoff wait for the next prune: one may still be being indexed.
  // (The lists hold pack ids: a pack holds many blobs, so they stay far smaller than the sets above.)
  const usage = repo.packUsage({ createdBefore: cutoff, spillAt: opts.spillAt, dir: path.join(repo.dir, REPO_DIRS.tmp) });
  const dead: string[] = [];
  const sparse: string[] = [];
  try {
    for (const [pack, u] of usage) {
      if (u.liveBlobs === 0) dead.push(pack);
      else if (u.liveBytes < u.size * repackBelow) sparse.push(pack);
    }
  } finally {
    usage.close();
  }
  if (sparse.length) {
    const moved = await repack(repo, sparse);
    report.packs_repacked = sparse.length;
    report.bytes_repacked = moved;
    dead.push(...sparse);
    await pausePoint('prune-repacked');
  }
  await removePacks(await repo.dropPacks(dead, false));
  report.packs_deleted = dead.length - sparse.length;

  // 5. Orphans and unfinished packs older than the margin, and older than the
  // oldest open session (`cutoff`): a live session's tmp pack is written after
  // it started, and may go untouched for long while its agent only offers
  // blobs the repository has (a mostly deduplicated stream).
  const old = Math.min(started - ORPHAN_PACK_MIN_AGE_MS, cutoff);
  // An orphan whose trailer is intact and holds blobs the index lacks is adopted, never deleted.
  for (const p of await repo.unindexedPackFiles()) {
    if (p.modified >= old || deletions.has(p.id)) continue;
    if (await repo.adoptPack(p)) report.orphan_packs_adopted++;
    else await removePacks([p]), report.orphan_packs_deleted++;
  }
  const tmp = path.join(repo.dir, REPO_DIRS.tmp);
  for (const n of fs.readdirSync(tmp)) {
    const f = path.join(tmp, n);
    if (fs.statSync(f).mtimeMs < old) fs.rmSync(f, { force: true }), report.tmp_files_deleted++;
  }
  report.packs_pending_deletion = deletions.count();

  // 7. Index segments: the repacks' packs get theirs, then stale and small ones are compacted.
  await repo.flushIndexSegments();
  const segments = await repo.storage.listIndexSegments(); // before the pack listing: see compactIndexSegments
  const stored = new Set((await repo.storage.listPacks()).map((p) => p.id));
  const compacted = await compactIndexSegments(repo.storage, segments, (id) => !stored.has(id) || deletions.has(id));
  report.index_segments_replaced = compacted.segments_replaced;
  report.index_segments_written = compacted.segments_written;
  report.bytes_after = repo.storedBytes();
  report.duration_s = (repo.clock.now() - started) / 1000;
  return report;
}

/** A record's key in the live and candidate sets: the hex id of a primary, hex/tag of a copy. */
const recordKey = (id: Id, copyOf: number | undefined) => (copyOf === undefined ? toHex(id) : `${toHex(id)}/${copyOf}`);

/** Add to `candidates` every record neither in `live` nor seen since `cutoff`; count the recent ones and the bytes going. */
export function selectCandidates(repo: Pick<Repository, 'allRecords'>, live: SeenSet, cutoff: number, candidates: SeenSet): { keptRecent: number; bytesRemoved: number } {
  let keptRecent = 0;
  let bytesRemoved = 0;
  for (const [id, r, tag] of repo.allRecords()) {
    const key = recordKey(id, tag);
    if (live.has(key)) continue;
    if (r.seen >= cutoff) keptRecent++;
    else (bytesRemoved += r.length), candidates.add(key);
  }
  return { keptRecent, bytesRemoved };
}

/** The records recordKey names, back as id and tag (the sweep reads them lazily, from disk once spilled). */
export function* recordsOf(keys: Iterable<string>): Generator<{ id: Id; tag?: number }> {
  for (const k of keys) {
    const slash = k.indexOf('/');
    if (slash < 0) yield { id: Buffer.from(k, 'hex') };
    else yield { id: Buffer.from(k.slice(0, slash), 'hex'), tag: Number(k.slice(slash + 1)) };
  }
}

/**
 * The records reachable from `roots` (recordKey), each snapshot walked
 * through its source's view (its own copy of a blob when it has one). With
 * no copies at all every view is the primary one and a subtree shared by
 * sources is walked once; otherwise once per source.
 */
async function mark(repo: Repository, roots: { root: string; source: string }[], live: SeenSet, scratch: SeenSetOptions): Promise<void> {
  const views = new Map<string, BlobView>();
  const viewOf = (source: string) => views.get(source) ?? views.set(source, repo.views.ofSource(source)).get(source)!;
  type Node = { id: Id; view: BlobView };
  const perView = new Map<BlobView, number>();
  const keyOf = ({ id, view }: Node) => {
    if (!perView.has(view)) perView.set(view, perView.size);
    return view === repo.views.primary ? toHex(id) : `${toHex(id)}/${perView.get(view)}`;
  };
  const rootNodes: Node[] = roots.map((r) => ({ id: Buffer.from(r.root, 'hex'), view: viewOf(r.source) }));
  const walked = newSeenSet(scratch); // trees per view
  try {
    await walkDag(rootNodes, keyOf, (node) => visit(node), walked);
  } finally {
    walked.close();
  }
  async function visit({ id, view }: Node): Promise<Node[] | undefined> {
    const at = view(id);
    if (!at) return undefined;
    live.add(recordKey(id, at.copyOf));
    if (at.record.type !== BlobType.Tree) return undefined;
    // A damaged tree stops the prune: collecting with an incomplete mark would delete live data.
    const { edges } = parseBlob(await repo.readBlob(id, view));
    const trees: Node[] = [];
    for (const e of edges) {
      if (e.type === BlobType.Tree) trees.push({ id: e.id, view });
      else if (view === repo.views.primary) live.add(toHex(e.id));
      else {
        const d = view(e.id);
        if (d) live.add(recordKey(e.id, d.copyOf));
      }
    }
    return trees;
  }
}

/** Copy the live blobs and copies of `packs` into new packs; switch the index only after the new packs are durable. */
async function repack(repo: Repository, packs: string[]): Promise<number> {
  const from = new Set(packs);
  const moves: { id: Buffer; copyOf?: number; oldPack: string; oldOffset: number; pack: string; offset: number }[] = [];
  let writer: PackWriter | undefined;
  let moved = 0;
  const finish = async () => {
    if (!writer) return;
    const done = writer.seal();
    await repo.publishPack(done);
    await repo.switchBlobs(done.id, done.size, done.entries.length, moves.splice(0));
    writer = undefined;
  };
  for (const [id, r, copyOf] of repo.allRecords()) {
    if (!from.has(r.pack)) continue;
    const { bytes, hash } = await repo.readStored(id, copyOf === undefined ? repo.views.primary : repo.views.scoped(copyOf));
    writer ??= new PackWriter(path.join(repo.dir, REPO_DIRS.tmp), repo.packsDir);
    const e = writer.add(id, r.type, bytes, hash); // the whole hash readStored proved (the index keeps a prefix)
    moves.push({ id: Buffer.from(id), copyOf, oldPack: r.pack, oldOffset: r.offset, pack: writer.id, offset: e.offset });
    moved += bytes.length;
    if (writer.bytes >= 16 * 1024 * 1024) await finish();
  }
  await finish();
  return moved;
}

