import type { Database, RootDatabase } from 'lmdb';
import { BlobType } from '../blob/format.js';
import { parseBlob } from '../blob/seal.js';
import type { Clock } from '../clock.js';
import type { BlobView, BlobViews, Located } from '../copy-index.js';
import { corrupt, KeepError } from '../errors.js';
import { randomId } from '../fsutil.js';
import type { RepoStorage } from '../store/repo-storage.js';
import { Id, toHex } from '../ids.js';
import type { BlobReader } from '../index/blob-reader.js';
import type { BlobStore } from '../index/blob-store.js';
import { newSeenSet, SeenSet } from '../dag/seen-set.js';
import { walkDag } from '../dag/walk.js';
import { loadSnapshotFiles } from '../index/rebuild.js';
import type { SessionRegistry } from '../sessions/registry.js';
import { checkCommitTime } from './commit-time.js';
import { checkReplacement, Replacement } from './replace.js';
import { byTime, NewSnapshot, Snapshot } from './snapshot.js';

/** How a snapshot is committed (SnapshotStore.commit). */
export interface CommitOptions {
  /** when the writer's session began, on this repository's clock */
  started?: number;
  /** whose bytes count as stored (a scoped source's: see closure) */
  view?: BlobView;
  /** more index writes made in the snapshot record's own transaction (a session's end): one disk sync for all */
  alongside?: () => void;
}

/**
 * The snapshots of a repository: snapshots/<id>.json in its storage (the
 * durable copy, written first) and the index's `snapshots` table. A snapshot is published
 * only once every blob reachable from its root is stored (closure).
 */
export class SnapshotStore {
  constructor(
    private readonly env: RootDatabase,
    private readonly snaps: Database<Snapshot, string>,
    private readonly index: BlobStore,
    private readonly views: BlobViews,
    private readonly reader: BlobReader,
    private readonly sessions: SessionRegistry,
    private readonly storage: RepoStorage,
    private readonly clock: Clock,
  ) {}

  list(filter: { source?: string; host?: string } = {}): Snapshot[] {
    const out: Snapshot[] = [];
    for (const { value } of this.snaps.getRange()) {
      if (filter.source !== undefined && value.source !== filter.source) continue;
      if (filter.host !== undefined && value.host !== filter.host) continue;
      out.push(value);
    }
    return out.sort(byTime);
  }

  get(id: string): Snapshot | undefined {
    return this.snaps.get(id);
  }

  /**
   * Walk the DAG from `root` and list what is not stored, as `view` sees it
   * (a source-scoped commit: what its source may use). Trees already proven
   * complete in the view (part of an earlier committed snapshot) are not walked again.
   */
  async closure(root: Id, view: BlobView = this.views.primary): Promise<{ missing: string[]; trees: (Located & { id: Id })[] }> {
    const missing: string[] = [];
    const walked: (Located & { id: Id })[] = [];
    // The unscoped view asks the blob table for presence without decoding records.
    const has = view === this.views.primary ? (id: Id) => this.index.has(id) : (view.has ?? ((id: Id) => view(id) !== undefined));
    const seen = newSeenSet();
    const epoch = this.index.gcEpoch();
    try {
      await this.walkClosure(root, view, { epoch, has, seen, missing, walked });
    } finally {
      seen.close();
    }
    return { missing, trees: walked };
  }

  private async walkClosure(
    root: Id,
    view: BlobView,
    w: { epoch: number; has: (id: Id) => boolean; seen: SeenSet; missing: string[]; walked: (Located & { id: Id })[] },
  ): Promise<void> {
    const { epoch, has, seen, missing, walked } = w;
    await walkDag<Id>([root], toHex, async (id, hex) => {
      const at = view(id);
      if (!at) {
        missing.push(hex);
        return undefined;
      }
      const r = at.record;
      if (r.type !== BlobType.Tree) throw corrupt(`blob ${hex} is referenced as a tree but stored as data`);
      if (r.complete !== undefined && r.complete === epoch) return undefined;
      walked.push({ ...at, id });
      const { edges } = parseBlob(await this.reader.readBlob(id, view));
      const trees: Id[] = [];
      for (const e of edges) {
        if (e.type === BlobType.Tree) trees.push(e.id);
        else if (!has(e.id)) {
          const h = toHex(e.id);
          if (!seen.has(h)) missing.push(h), seen.add(h);
        }
      }
      return trees;
    }, seen);
  }

  /**
   * Make a snapshot visible, only if every blob reachable from its root is
   * stored. The writer's id (covered by its MAC) is kept unless taken; this
   * repository's clock is recorded as server_time and checked against the
   * snapshot's (`started`: when the writer's session began, on this clock).
   * `view`: whose bytes count as stored (a scoped source's: see closure).
   */
  async commit(s: NewSnapshot, opts: CommitOptions = {}): Promise<Snapshot> {
    const now = this.clock.now();
    checkCommitTime(s.time, now, opts.started);
    if (s.mac !== undefined && !/^[0-9a-f]{64}$/.test(s.mac)) throw new KeepError('INVALID_ARGUMENT', 'snapshot mac must be 64 hex digits');
    const id = s.id || randomId();
    if (!/^[0-9a-f]{32}$/.test(id)) throw new KeepError('INVALID_ARGUMENT', `bad snapshot id ${id}`);
    // Append-only: a writer never replaces a record (its own or another source's).
    if (this.snaps.get(id) || (await this.storage.hasSnapshot(id))) throw new KeepError('ALREADY_EXISTS', `snapshot ${id} exists`);
    return this.publish({ ...s, id, server_time: new Date(now).toISOString() }, opts.view, opts.alongside);
  }

  /** A snapshot copied from another repository (sync) keeps its id; same closure rule. */
  async importSnapshot(s: Snapshot, view?: BlobView): Promise<Snapshot> {
    if (!/^[0-9a-f]{32}$/.test(s.id)) throw new KeepError('INVALID_ARGUMENT', `bad snapshot id ${s.id}`);
    if (this.snaps.get(s.id)) return this.snaps.get(s.id)!;
    return this.publish(s, view);
  }

  private async publish(snap: Snapshot, view: BlobView = this.views.primary, alongside?: () => void): Promise<Snapshot> {
    const s = snap;
    const root = Buffer.from(s.root, 'hex');
    if (root.length !== 32) throw new KeepError('INVALID_ARGUMENT', 'snapshot root must be a 64-digit hex id');
    const { missing, trees } = await this.closure(root, view);
    if (missing.length) {
      throw new KeepError('INCOMPLETE', `snapshot refused: ${missing.length} blob(s) reachable from its root are not stored (first: ${missing[0]})`);
    }
    const epoch = this.index.gcEpoch();
    await this.storage.writeSnapshot(snap.id, JSON.stringify(snap) + '\n');
    const now = this.clock.now();
    // One LMDB commit (one disk sync) for the record, the caller's writes and a few marks.
    // The marks only save later closure walks, so many of them go in batches after the snapshot.
    // A sweep that ran during the walk makes these marks stale: only the epoch the walk saw is recorded.
    const marksNow = trees.length <= this.index.writeBatch;
    await this.env.transaction(() => {
      void this.snaps.put(snap.id, snap);
      alongside?.();
      if (marksNow) this.index.markCompleteNow(trees, epoch, now);
    });
    if (!marksNow) await this.index.markComplete(trees, epoch, now);
    return snap;
  }

  /**
   * Rewrite a record (`keep tag`): the replacement (checkReplacement) is
   * published with the old record's server_time, then the old one removed.
   * A crash between the two leaves both, as restic's tag does.
   */
  async replace(oldId: string, next: Replacement): Promise<Snapshot> {
    const old = this.snaps.get(oldId);
    if (!old) throw new KeepError('NOT_FOUND', `no snapshot ${oldId}`);
    this.refuseSessionParents([oldId]);
    checkReplacement(old, next);
    if (this.snaps.get(next.id) || (await this.storage.hasSnapshot(next.id))) throw new KeepError('ALREADY_EXISTS', `snapshot ${next.id} exists`);
    const { server_time: _theirs, ...fields } = next as Snapshot;
    const published = await this.publish({ ...fields, ...(old.server_time ? { server_time: old.server_time } : {}) });
    await this.remove([oldId]);
    return published;
  }

  /** Whether a tree's whole DAG was proven stored (in `view`) since the last sweep. */
  isComplete(id: Id, view: BlobView = this.views.primary): boolean {
    const r = view(id)?.record;
    return r?.complete !== undefined && r.complete === this.index.gcEpoch();
  }

  /**
   * Remove snapshots (forget). The snapshot file goes first: a crash between
   * the two steps leaves an LMDB record whose file is gone, which the next
   * open reconciles away. Never removes a snapshot that an open session builds on.
   */
  async remove(ids: string[]): Promise<void> {
    this.refuseSessionParents(ids);
    await this.storage.deleteSnapshots(ids);
    await this.env.transaction(() => {
      for (const id of ids) this.snaps.remove(id);
    });
  }

  private refuseSessionParents(ids: string[]): void {
    const protectedIds = new Set(this.sessions.live().map((s) => s.parent).filter(Boolean));
    for (const id of ids) if (protectedIds.has(id)) throw new KeepError('PERMISSION_DENIED', `snapshot ${id} is the parent of an open backup session; forget it after that session ends`);
  }

  /** Snapshot files written but not in LMDB (a crash between the two steps) are adopted. */
  async reconcile(): Promise<void> {
    await loadSnapshotFiles({ env: this.env, snaps: this.snaps }, this.storage);
  }
}
