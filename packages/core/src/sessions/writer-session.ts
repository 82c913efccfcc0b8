import type { BlobView } from '../copy-index.js';
import type { BlobWriter } from '../blob-writer.js';
import { randomId } from '../fsutil.js';
import type { SessionRecord } from '../index/tables.js';
import { SESSION_LEASE_MS } from '../margins.js';
import type { Repository } from '../repository.js';
import type { NewSnapshot, Snapshot } from '../snapshot/snapshot.js';

/** What a writer session needs of a repository. */
export type SessionRepository = Pick<Repository, 'clock' | 'openWriter' | 'registerSession' | 'renewSession' | 'endSession' | 'endSessionNow' | 'commitSnapshot'>;

/** Who opens a session: recorded in the registry for GC and forget. */
export type SessionOwner = Pick<SessionRecord, 'source' | 'host' | 'parent' | 'tokenId'>;

/**
 * One leased writer session, embedded (agent/src/repo/local.ts) or served by
 * keepd (server/src/sessions.ts). It owns one BlobWriter (one open pack)
 * whose writes run strictly in order, and a lease recorded in the session
 * registry (sessions/registry.ts): while it lives, GC keeps what the session
 * was told it need not upload and forget keeps its parent.
 */
export class WriterSession {
  /** BlobWriter is one stream: work on it is applied in order. */
  private chain: Promise<unknown> = Promise.resolve();
  /** whether this session's record was written (or is being written) to the registry */
  private recorded = false;
  /** the first record's write when open did not wait for it */
  private recording: Promise<void> = Promise.resolve();
  /** committed or ended: its record is gone and must not come back */
  private ended = false;

  private constructor(
    private readonly repo: SessionRepository,
    readonly id: string,
    readonly owner: SessionOwner,
    readonly writer: BlobWriter,
    readonly started: number,
    public leaseUntil: number,
  ) {}

  /**
   * Open a session and record it (so a prune in any process protects it from now on).
   * `recordInBackground` (keepd): a session without a parent is answered before its
   * record's disk sync ends, which overlaps the caller's next round trip instead of
   * delaying it; the session's commit or end waits for it. Safe because the record
   * protects nothing yet: prune keeps whatever was stored or touched within
   * GC_GRACE_MS anyway, and only a parent needs protecting from forget (so a session
   * with one is recorded before the answer). A crash before the sync loses nothing
   * either: keepd's sessions die with it.
   */
  static async open(repo: SessionRepository, owner: SessionOwner, writer: BlobWriter = repo.openWriter(), id: string = randomId(), opts: { recordInBackground?: boolean } = {}): Promise<WriterSession> {
    const now = repo.clock.now();
    const s = new WriterSession(repo, id, { ...owner, parent: owner.parent || undefined }, writer, now, now + SESSION_LEASE_MS);
    const recorded = s.recordLease();
    if (opts.recordInBackground && !s.owner.parent) {
      s.recording = recorded;
      recorded.catch(() => undefined); // surfaces at commit or end
    } else await recorded;
    return s;
  }

  /** The registry's record of this session. */
  record(): SessionRecord {
    const { source, host, parent, tokenId } = this.owner;
    return { source, host, parent, tokenId, started: this.started, leaseUntil: this.leaseUntil };
  }

  /** Extend the lease in memory; recordLease writes it to the registry. */
  extendLease(now = this.repo.clock.now()): void {
    this.leaseUntil = now + SESSION_LEASE_MS;
  }

  /** Write the lease to the registry (the whole record the first time). */
  async recordLease(): Promise<void> {
    if (this.ended) return;
    if (this.recorded) return this.repo.renewSession(this.id, this.leaseUntil);
    this.recorded = true;
    await this.repo.registerSession(this.id, this.record());
  }

  /** Extend and record the lease once half of it is used (a session that records on its own). */
  async renewIfHalfUsed(): Promise<void> {
    const now = this.repo.clock.now();
    if (now < this.leaseUntil - SESSION_LEASE_MS / 2) return;
    this.extendLease(now);
    await this.recordLease();
  }

  /** Run `work` after every earlier one; a failure is the caller's, never the next work's. */
  inOrder<T>(work: () => Promise<T>): Promise<T> {
    const run = this.chain.then(work);
    this.chain = run.catch(() => undefined);
    return run;
  }

  /** Wait for queued work (never throws: a failure was its caller's). */
  drained(): Promise<unknown> {
    return this.chain;
  }

  /** Make what the writer holds durable (its open pack sealed and indexed). */
  flush(): Promise<void> {
    return this.writer.flush();
  }

  /**
   * Publish a snapshot (closure checked against `view`), its time checked against this session's start.
   * The session ends with it, in the snapshot record's transaction, with the caller's `alongside` writes.
   */
  async commitSnapshot(snap: NewSnapshot, view?: BlobView, alongside?: () => void): Promise<Snapshot> {
    const alongsideEnd = () => {
      alongside?.();
      this.ended = true; // no lease recorded from now on: it would outlive the session
      this.repo.endSessionNow(this.id);
    };
    await this.recording; // the record's removal below must come after its write
    try {
      return await this.repo.commitSnapshot(snap, { started: this.started, view, alongside: alongsideEnd });
    } catch (e) {
      this.ended = false; // the session lives on (a refused snapshot can be sent again)
      throw e;
    }
  }

  /** Remove the session's record: what it stored stays for a rerun or its snapshot. */
  async end(): Promise<void> {
    await this.recording.catch(() => undefined);
    const recorded = this.recorded && !this.ended;
    this.ended = true;
    if (recorded) await this.repo.endSession(this.id);
  }
}
