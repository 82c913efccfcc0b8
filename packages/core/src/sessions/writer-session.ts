import type { BlobView } from '../copy-index.js';
import type { BlobWriter } from '../blob-writer.js';
import { randomId } from '../fsutil.js';
import type { SessionRecord } from '../index/tables.js';
import { SESSION_LEASE_MS } from '../margins.js';
import type { Repository } from '../repository.js';
import type { NewSnapshot, Snapshot } from '../snapshot/snapshot.js';

/** What a writer session needs of a repository. */
export type SessionRepository = Pick<Repository, 'clock' | 'openWriter' | 'registerSession' | 'renewSession' | 'endSession' | 'commitSnapshot'>;

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

  private constructor(
    private readonly repo: SessionRepository,
    readonly id: string,
    readonly owner: SessionOwner,
    readonly writer: BlobWriter,
    readonly started: number,
    public leaseUntil: number,
  ) {}

  /** Open a session and record it (so a prune in any process protects it from now on). */
  static async open(repo: SessionRepository, owner: SessionOwner, writer: BlobWriter = repo.openWriter(), id: string = randomId()): Promise<WriterSession> {
    const now = repo.clock.now();
    const s = new WriterSession(repo, id, { ...owner, parent: owner.parent || undefined }, writer, now, now + SESSION_LEASE_MS);
    await repo.registerSession(id, s.record());
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

  recordLease(): Promise<void> {
    return this.repo.renewSession(this.id, this.leaseUntil);
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

  /** Publish a snapshot (closure checked against `view`), its time checked against this session's start. */
  commitSnapshot(snap: NewSnapshot, view?: BlobView): Promise<Snapshot> {
    return this.repo.commitSnapshot(snap, { started: this.started, view });
  }

  /** Remove the session's record: what it stored stays for a rerun or its snapshot. */
  end(): Promise<void> {
    return this.repo.endSession(this.id);
  }
}
