import { create } from '@bufbuild/protobuf';
import grpc from '@grpc/grpc-js';
import { Id, KeepError, SealedBlob, SealedSnapshot, Snapshot, toHex } from '@keep/core';
import {
  CloseSessionRequestSchema,
  CloseSessionResponse,
  CommitRequestSchema,
  CommitResponse,
  MAX_IDS_PER_REQUEST,
  OfferRequestSchema,
  OfferResponse,
  RepositoryService,
  snapshotFromWire,
  snapshotToWire,
  batchEntrySize,
  frameUploadBatch,
  UPLOAD_BATCH_BLOBS,
  UPLOAD_BATCH_BYTES,
  UploadAck,
  UploadEncoder,
} from '@keep/proto';
import type { BackupSession } from './connection.js';
import type { CallStatus, StreamCall } from './remote-stream.js';

/** Commit flushes and checks the closure of the whole snapshot: allow it longer. */
const COMMIT_DEADLINE_MS = 30 * 60_000;
/** Ids per Offer call (as many as keepd accepts). */
const OFFER_BATCH = MAX_IDS_PER_REQUEST;
/** How long abort() lets the upload stream finish before cancelling it. */
const ABORT_GRACE_MS = 10_000;

/** What a session needs of its connection (remote.ts): unary calls, the upload stream, error mapping. */
export interface SessionTransport {
  call<Res>(method: keyof typeof RepositoryService.method, req: unknown, deadlineMs?: number): Promise<Res>;
  openUploadStream(onAck: (acks: UploadAck[]) => void): StreamCall;
  mapError(e: unknown): KeepError;
}

export interface Deferred<T> {
  resolve(v: T): void;
  reject(e: Error): void;
}

/** Blobs of one put() still awaiting acknowledgement. */
interface PutState extends Deferred<number> {
  remaining: number;
  newBytes: number;
  settled: boolean;
}

/** A blob put and not yet written. */
interface Queued {
  blob: SealedBlob;
  put: PutState;
}

/**
 * A writer session on keepd. All blobs travel on one bidi Upload stream,
 * opened on the first put(); the server acknowledges them in write order.
 */
export class RemoteSession implements BackupSession {
  private call?: StreamCall;
  private readonly encoder: UploadEncoder;
  /** Settles when the upload stream has ended: resolves on OK with every blob acknowledged. */
  private finished: Promise<void> = Promise.resolve();
  private streamDone = true;
  /** Blobs written and not yet acknowledged, in write order: acks[ackHead..]. */
  private acks: { id: Id; put: PutState }[] = [];
  private ackHead = 0;
  private drainWaiters: Deferred<void>[] = [];
  /** Blobs put and not yet written, in order: queue[queueHead..] (the pump writes them one message at a time). */
  private queue: Queued[] = [];
  private queueHead = 0;
  private pumping = false;
  /** Settles when the pump has written everything queued (or failed). */
  private writing: Promise<void> = Promise.resolve();
  private readonly session: Buffer;
  private failure?: KeepError;
  private closed = false;
  private aborted = false;

  constructor(
    private readonly conn: SessionTransport,
    readonly sessionId: string,
    /** keepd takes batched uploads (GetConfigResponse.batched_uploads) */
    private readonly batched = false,
  ) {
    this.encoder = new UploadEncoder(sessionId);
    this.session = Buffer.from(sessionId, 'utf8');
  }

  private get unacked(): number {
    return this.acks.length - this.ackHead;
  }

  async missing(ids: Id[]): Promise<Id[]> {
    if (ids.length === 0) return [];
    const calls: Promise<OfferResponse>[] = [];
    for (let i = 0; i < ids.length; i += OFFER_BATCH) {
      calls.push(this.conn.call<OfferResponse>('offer', create(OfferRequestSchema, { sessionId: this.sessionId, ids: ids.slice(i, i + OFFER_BATCH) })));
    }
    const want = new Set<string>();
    for (const r of await Promise.all(calls)) for (const m of r.missing) want.add(toHex(m));
    // Answer with the caller's own buffers, in the caller's order.
    return ids.filter((id) => want.has(toHex(id)));
  }

  put(blobs: SealedBlob[]): Promise<number> {
    if (this.closed) return Promise.reject(new KeepError('INVALID_ARGUMENT', 'the backup session is closed'));
    if (this.failure) return Promise.reject(this.failure);
    if (blobs.length === 0) return Promise.resolve(0);
    return new Promise<number>((resolve, reject) => {
      const put: PutState = { remaining: blobs.length, newBytes: 0, settled: false, resolve, reject };
      for (const blob of blobs) this.queue.push({ blob, put });
      this.pump();
    });
  }

  /**
   * Write what is queued, in order, until the queue is empty. Blobs queue up
   * while the stream waits for a drain, so batches fill under backpressure;
   * an idle stream sends what it has at once (no timer holds a blob back).
   */
  private pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    /** the blobs taken from the queue and not yet among `acks` */
    let inHand: Queued[] = [];
    const run = (async () => {
      try {
        while (this.queueHead < this.queue.length) {
          if (this.failure) throw this.failure;
          const call = this.stream();
          const batch = (inHand = this.takeBatch());
          const single = batch.length === 1 ? batch[0].blob : undefined;
          const msg = single ? this.encoder.frame(single) : frameUploadBatch(this.session, batch.map((q) => q.blob));
          for (const { blob, put } of batch) this.acks.push({ id: blob.id, put });
          inHand = [];
          // Written from the blobs' own buffers: the stream calls back once it no longer needs one, and it can carry another chunk.
          const written = Buffer.isBuffer(msg) ? call.write(msg, single!.release && (() => single!.release!())) : call.writePieces(msg);
          if (!written) await this.drain();
        }
      } finally {
        // set in the turn that found the queue empty (or failed): a put() after it starts a new pump
        this.pumping = false;
      }
    })();
    run.catch((e: unknown) => {
      const error = this.conn.mapError(e);
      const left = [...inHand, ...this.queue.slice(this.queueHead)];
      this.queue = [];
      this.queueHead = 0;
      for (const q of left) this.settle(q.put, error);
    });
    this.writing = run.catch(() => undefined);
  }

  /** The next message's blobs: one, or (to a keepd that takes batches) up to UPLOAD_BATCH_BLOBS / UPLOAD_BATCH_BYTES of them. */
  private takeBatch(): Queued[] {
    const first = this.queueHead;
    let end = first + 1;
    if (this.batched) {
      let bytes = batchEntrySize(this.queue[first].blob);
      while (end < this.queue.length && end - first < UPLOAD_BATCH_BLOBS) {
        const size = batchEntrySize(this.queue[end].blob);
        if (bytes + size > UPLOAD_BATCH_BYTES) break;
        bytes += size;
        end++;
      }
    }
    const batch = this.queue.slice(first, end);
    this.queueHead = end;
    if (this.queueHead === this.queue.length) {
      this.queue = [];
      this.queueHead = 0;
    } else if (this.queueHead > 1024 && this.queueHead * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.queueHead);
      this.queueHead = 0;
    }
    return batch;
  }

  async commit(s: SealedSnapshot): Promise<Snapshot> {
    if (this.closed) throw new KeepError('INVALID_ARGUMENT', 'the backup session is closed');
    this.closed = true;
    await this.writing;
    if (this.failure) throw this.failure;
    if (this.call) {
      this.call.end();
      await this.finished;
    }
    const r = await this.conn.call<CommitResponse>('commit', create(CommitRequestSchema, { sessionId: this.sessionId, snapshot: snapshotToWire(s) }), COMMIT_DEADLINE_MS);
    if (!r.snapshot) throw new KeepError('INTERNAL', 'keepd committed without returning the snapshot');
    const committed = snapshotFromWire(r.snapshot);
    // A keepd from before snapshot MACs drops them (and picks its own id): the record could not be told from a forgery.
    if (committed.id !== s.id || committed.mac !== s.mac) {
      throw new KeepError('INTERNAL', `keepd committed snapshot ${committed.id} without this agent's id and MAC (a keepd older than this agent?): upgrade keepd; restore treats that snapshot as unauthenticated`);
    }
    return committed;
  }

  async abort(): Promise<void> {
    if (this.aborted) return;
    this.aborted = true;
    this.closed = true;
    if (this.call && !this.streamDone) {
      // Let the server store what it already has (a rerun reuses it), but not forever.
      const call = this.call;
      let timer: NodeJS.Timeout | undefined;
      const graceful = this.writing.then(() => {
        call.end();
        return this.finished;
      });
      const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, ABORT_GRACE_MS)));
      await Promise.race([graceful.catch(() => undefined), timeout]);
      clearTimeout(timer);
      if (!this.streamDone) call.cancel();
      this.fail(new KeepError('INVALID_ARGUMENT', 'the backup session was aborted'));
    }
    await this.conn.call<CloseSessionResponse>('closeSession', create(CloseSessionRequestSchema, { sessionId: this.sessionId })).catch(() => undefined);
  }

  // ---- the upload stream ---------------------------------------------------

  private stream(): StreamCall {
    if (this.call) return this.call;
    const call = this.conn.openUploadStream((acks) => this.onAcks(acks));
    this.call = call;
    this.streamDone = false;
    this.finished = new Promise<void>((resolve, reject) => {
      call.on('drain', () => {
        const ws = this.drainWaiters;
        this.drainWaiters = [];
        for (const w of ws) w.resolve();
      });
      // The status comes last, after every acknowledgement.
      call.on('status', (s: CallStatus) => {
        if (this.streamDone) return;
        this.streamDone = true;
        let error = s.code === grpc.status.OK ? undefined : this.conn.mapError(s);
        if (!error && this.unacked) error = new KeepError('INTERNAL', `keepd ended the upload stream with ${this.unacked} blobs unacknowledged`);
        if (error) {
          this.fail(error);
          reject(error);
        } else {
          resolve();
        }
      });
    });
    this.finished.catch(() => undefined);
    return call;
  }

  private drain(): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise<void>((resolve, reject) => this.drainWaiters.push({ resolve, reject }));
  }

  private onAcks(acks: UploadAck[]): void {
    for (const a of acks) if (!this.failure) this.onAck(a);
  }

  private onAck(r: UploadAck): void {
    // Acks come in write order; look further only if the server reorders.
    let i = this.ackHead;
    if (i >= this.acks.length || !this.acks[i].id.equals(r.id)) {
      i = this.acks.findIndex((a, j) => j >= this.ackHead && a.id.equals(r.id));
      if (i < 0) {
        this.fail(new KeepError('INTERNAL', `keepd acknowledged blob ${toHex(r.id)}, which was not sent`));
        this.call?.cancel();
        return;
      }
      // Out of order: swap it to the head, then take the head.
      [this.acks[i], this.acks[this.ackHead]] = [this.acks[this.ackHead], this.acks[i]];
    }
    const { put } = this.acks[this.ackHead++];
    if (this.ackHead > 1024 && this.ackHead * 2 > this.acks.length) {
      this.acks = this.acks.slice(this.ackHead);
      this.ackHead = 0;
    }
    put.newBytes += r.newBytes;
    if (--put.remaining === 0) this.settle(put);
  }

  private settle(put: PutState, error?: KeepError): void {
    if (put.settled) return;
    put.settled = true;
    if (error) put.reject(error);
    else put.resolve(put.newBytes);
  }

  /** The stream broke: every put waiting on it fails with the same error. */
  private fail(e: KeepError): void {
    this.failure ??= e;
    const acks = this.acks.slice(this.ackHead);
    this.acks = [];
    this.ackHead = 0;
    for (const a of acks) this.settle(a.put, this.failure);
    const ws = this.drainWaiters;
    this.drainWaiters = [];
    for (const w of ws) w.reject(this.failure);
  }
}
