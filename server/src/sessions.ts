import { Clock, Id, KeepError, MAX_SESSION_AGE_MS, NewBlob, NewSnapshot, Repository, Snapshot, toHex, WriterSession } from '@keep/core';
import type { Principal } from './auth/tokens.js';
import { audit } from './audit/log.js';
import { DedupScopeIndex } from './dedup-scope.js';

/** keepd's side of a writer session: the caller's token and source ownership, around core's leased WriterSession. */
export interface Session {
  id: string;
  source: string;
  host: string;
  tokenId: string;
  principal: Principal;
  /** the writer, its ordered work and its lease */
  lease: WriterSession;
  /** ids this session owns that its BlobWriter's owner tag does not cover, not yet recorded */
  unrecorded: Id[];
  /** every id uploaded in this session (answers "have it" before ownership is written) */
  uploaded: Set<string>;
  /** the source's owner tag */
  tag: number;
  /** source-scoped (an agent token with --dedup source): sees only its source's blobs, stores its own copies */
  scoped: boolean;
  /** the session's `session.open` audit record, not yet written: it goes with the session's end (SessionManager.end) */
  unaudited?: true;
}

/** A source-scoped session: "have it" only for its source's blobs, uploads of other ids become its copies. */
export const isScoped = (p: Principal): boolean => p.role === 'agent' && p.dedup === 'source';

/** Ownership is written in batches of this many ids. */
const OWNERSHIP_BATCH = 512;
/** Why recently closed sessions ended, for their next call's error (bounded: oldest forgotten first). */
const ENDED_KEPT = 1000;

/**
 * Writer sessions with leases. A session owns one BlobWriter (one open pack);
 * every call renews its lease; a session whose lease ends is flushed (what it
 * stored stays for its rerun) and dropped.
 */
export class SessionManager {
  private readonly open = new Map<string, Session>();
  private readonly endedWhy = new Map<string, string>();

  constructor(
    private readonly repo: Repository,
    private readonly scope: DedupScopeIndex,
    private readonly clock: Clock,
  ) {}

  get count(): number {
    return this.open.size;
  }

  async start(p: Principal, source: string, host: string, parent?: string): Promise<Session> {
    if (!source) throw new KeepError('INVALID_ARGUMENT', 'a session needs a source name');
    const owner = await this.scope.tagOf(source);
    const scoped = isScoped(p);
    // Blobs this session is first to store carry its source's tag: no ownership row for them.
    // A scoped one stores what its source does not own as its copy (never gains another source's bytes).
    const writer = this.repo.openWriter({ owner, owns: scoped ? this.scope.ownsFor(source, owner) : undefined });
    // Answered without waiting for the record's disk sync (WriterSession.open says why that is safe).
    const lease = await WriterSession.open(this.repo, { source, host, parent, tokenId: p.tokenId }, writer, undefined, { recordInBackground: true });
    const s: Session = { id: lease.id, source, host, tokenId: p.tokenId, principal: p, lease, unrecorded: [], uploaded: new Set(), tag: owner, scoped, unaudited: true };
    this.open.set(s.id, s);
    return s;
  }

  /** The caller's open session; renews its lease. */
  get(id: string, p: Principal): Session {
    const s = this.open.get(id);
    if (!s || s.tokenId !== p.tokenId) throw new KeepError('NOT_FOUND', `no open session ${id} (${(s ? undefined : this.endedWhy.get(id)) ?? 'its lease may have ended'}; rerun the backup)`);
    const now = this.clock.now();
    if (now - s.lease.started > MAX_SESSION_AGE_MS) {
      void this.closeBecause(s, tooOld());
      throw new KeepError('NOT_FOUND', `no open session ${id} (${tooOld()}; rerun the backup)`);
    }
    s.lease.extendLease(now);
    return s;
  }

  private closeBecause(s: Session, why: string): Promise<void> {
    this.open.delete(s.id); // no call finds it while it flushes
    this.endedWhy.set(s.id, why);
    if (this.endedWhy.size > ENDED_KEPT) this.endedWhy.delete(this.endedWhy.keys().next().value!);
    return this.close(s).catch(() => undefined);
  }

  /** Dedup negotiation: the ids this session must send. */
  async offer(s: Session, ids: Id[]): Promise<Id[]> {
    const scoped = s.scoped;
    const have: Id[] = [];
    const missing: Id[] = [];
    const view = scoped ? this.scope.view(s.source) : undefined;
    for (const id of ids) {
      const visible = view ? s.uploaded.has(toHex(id)) || view(id) !== undefined : this.repo.has(id);
      (visible ? have : missing).push(id);
    }
    // "have it" renews the blob's lastSeen (and the source's copy's): GC must keep it until this session ends.
    if (have.length) await this.repo.touch(have, undefined, s.tag);
    // An unscoped session told "have it" references those blobs from its snapshot: its source owns them
    // (reads them back on restore). Scoped sessions are told "have it" only for what they own already.
    if (!scoped) for (const id of have) this.own(s, id);
    return missing;
  }

  private own(s: Session, id: Id): void {
    const hex = toHex(id);
    if (s.uploaded.has(hex)) return;
    s.uploaded.add(hex);
    s.unrecorded.push(id);
  }

  /** Verify and store a batch of blobs (one upload message); for each, whether it was new. Uploads of a session run strictly in order. */
  upload(s: Session, blobs: NewBlob[]): Promise<boolean[]> {
    return s.lease.inOrder(async () => {
      const added = await s.lease.writer.addMany(blobs);
      for (let i = 0; i < blobs.length; i++) {
        // What the writer stored is indexed with the source's tag, unless another session indexed it first.
        // A scoped session's writer stored it, or its source owns it already: never an ownership row.
        if (added[i] || s.scoped) s.uploaded.add(toHex(blobs[i].id));
        else this.own(s, blobs[i].id);
      }
      s.unrecorded.push(...s.lease.writer.takeIndexedElsewhere());
      if (s.unrecorded.length >= OWNERSHIP_BATCH) await this.recordOwnership(s);
      return added;
    });
  }

  private async recordOwnership(s: Session): Promise<void> {
    s.unrecorded.push(...s.lease.writer.takeIndexedElsewhere());
    const ids = s.unrecorded;
    s.unrecorded = [];
    await this.scope.record(s.source, ids);
  }

  async commit(s: Session, snap: NewSnapshot): Promise<Snapshot> {
    if (snap.source !== s.source) throw new KeepError('PERMISSION_DENIED', `session is for source ${s.source}, not ${snap.source}`);
    await s.lease.drained();
    await s.lease.flush();
    // Ownership durable before the snapshot file: a crash between that file and its index record must not leave a
    // snapshot (adopted from its file on open) whose source does not own what it references.
    await this.recordOwnership(s);
    // keepd's clock: the snapshot's time must fall within this session's life, give or take MAX_CLOCK_SKEW_MS.
    // A scoped snapshot may reach only its source's blobs: another source's is "missing", like one never stored.
    // The session ends in the snapshot record's transaction (WriterSession.commitSnapshot): one disk sync.
    const committed = await s.lease.commitSnapshot({ ...snap, host: s.host }, s.scoped ? this.scope.view(s.source) : undefined);
    await this.end(s);
    return committed;
  }

  /**
   * The stream that carried this session's uploads broke (the agent died or
   * lost keepd): make what arrived durable and owned by its source now, so a
   * rerun is answered "have it" for it instead of sending it again while this
   * session waits for its lease to end. The session itself stays open.
   */
  settle(s: Session): Promise<void> {
    return s.lease.inOrder(async () => {
      await s.lease.flush();
      await this.recordOwnership(s);
    });
  }

  /** End a session without a snapshot: what it stored is kept (durable) for a rerun. */
  async close(s: Session): Promise<void> {
    await s.lease.drained();
    await s.lease.flush();
    await this.recordOwnership(s);
    await this.end(s);
  }

  private async end(s: Session): Promise<void> {
    this.open.delete(s.id);
    this.auditOpen(s);
    await s.lease.end();
  }

  /**
   * The session's `session.open` record, queued when the session ends: a
   * commit's record follows it in the same turn, so both go in one audit
   * batch (one fsync, one checkpoint commit) that the Commit answer awaits,
   * instead of a batch of its own that OpenSession waited for. `opened`
   * keeps when the session began. A crash loses the open records of sessions
   * not yet ended: none of them published anything (what they uploaded is
   * unreferenced until a commit, and prune collects it), and keepd's log
   * still shows them opened.
   */
  private auditOpen(s: Session): void {
    if (!s.unaudited) return;
    s.unaudited = undefined;
    void audit(this.repo).record('session.open', s.principal, { source: s.source, session: s.id, opened: new Date(s.lease.started).toISOString() });
  }

  /** Close sessions whose lease ended, older than MAX_SESSION_AGE_MS, or whose token was revoked since. */
  async sweep(revoked: (tokenId: string) => boolean = () => false): Promise<number> {
    const now = this.clock.now();
    const why = (s: Session) =>
      s.lease.leaseUntil < now ? 'its lease ended' : now - s.lease.started > MAX_SESSION_AGE_MS ? tooOld() : revoked(s.tokenId) ? `its token ${s.tokenId} was revoked` : undefined;
    const expired = [...this.open.values()].flatMap((s) => {
      const w = why(s);
      return w ? [{ s, w }] : [];
    });
    for (const { s, w } of expired) await this.closeBecause(s, w);
    // Keep recorded leases current: GC (maybe another process) reads them.
    for (const s of this.open.values()) await s.lease.recordLease();
    return expired.length;
  }

  async closeAll(): Promise<void> {
    for (const s of [...this.open.values()]) await this.close(s).catch(() => undefined);
  }
}

const tooOld = () => `it reached the maximum session age of ${MAX_SESSION_AGE_MS / 3_600_000} h and was closed; what it stored is kept`;
