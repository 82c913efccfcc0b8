import os from 'node:os';
import v8 from 'node:v8';
import { Worker } from 'node:worker_threads';
import { sealForUpload } from '../blob/seal.js';
import { isChunkBuffer, recycleChunkBuffer } from '../chunker.js';
import { Compression, releaseCompressScratch } from '../compress.js';
import { KeepError, KeepErrorCode } from '../errors.js';
import { Id } from '../ids.js';
import { deriveKeys, RepoKeys } from '../keys/subkeys.js';
import { SealJob, SealResult } from './seal-jobs.js';

export { discardBuffer } from './discard.js';

/** A sealed blob on its way to a repository. */
export interface SealedBlob {
  id: Id;
  /** the stored bytes */
  bytes: Buffer;
  /** their storage hash, when already computed (the pool computes it off the main thread) */
  hash?: Buffer;
  /**
   * True when `bytes` lies in an ArrayBuffer that belongs to this blob alone,
   * with BLOB_ROOM.head spare bytes before it and BLOB_ROOM.tail after it: a
   * transport may write its framing there instead of copying the blob.
   */
  roomy?: boolean;
  /** Called by the repository connection once it no longer needs `bytes` (they were written or copied): the buffer is reused. */
  release?: () => void;
}

/** Plaintext bytes the pool seals on the calling thread before it starts a worker: small backups need none. */
const INLINE_BYTES = 4 * 1024 * 1024;
/** Queued plaintext per running worker beyond which another worker is started (up to the pool's size). */
const GROW_BYTES = 4 * 1024 * 1024;

/**
 * One worker per core but one: the main thread reads, chunks and hashes, and
 * a keepd on the same machine needs a core too. KEEP_SEAL_WORKERS overrides.
 */
export function sealWorkerCount(): number {
  return Number(process.env.KEEP_SEAL_WORKERS) || Math.max(1, os.availableParallelism() - 1);
}

/**
 * `u` in an ArrayBuffer of its own, so it can be transferred instead of
 * cloning a larger backing store. With `handOver`, a buffer that already owns
 * its whole ArrayBuffer (chunks from StreamChunker) is moved without a copy:
 * it is empty for the caller afterwards.
 */
function transferable(u: Uint8Array, handOver: boolean): Uint8Array {
  if (handOver && u.byteOffset === 0 && u.byteLength === u.buffer.byteLength && u.buffer instanceof ArrayBuffer) return u;
  const c = new Uint8Array(u.length);
  c.set(u);
  return c;
}

const asBuffer = (u: Uint8Array) => Buffer.from(u.buffer, u.byteOffset, u.byteLength);

interface Running {
  w: Worker;
  /** jobs and plaintext bytes sent and not yet answered */
  jobs: number;
  bytes: number;
}

/**
 * Worker threads that seal (zstd + AES-GCM) and open blobs, so the cores
 * work while the main thread reads, chunks and hashes. Workers start lazily:
 * the first INLINE_BYTES are sealed on the calling thread (an unchanged or
 * nearly unchanged backup starts none), then one worker, and more only while
 * the running ones have a backlog. Jobs go to the least loaded worker;
 * callers bound how much they keep in flight.
 */
export class SealPool {
  private readonly workers: Running[] = [];
  private readonly waiting = new Map<number, { resolve: (r: { bytes: Uint8Array; hash?: Uint8Array }[]) => void; reject: (e: Error) => void; worker: Running; bytes: number }>();
  private seq = 0;
  private broken: Error | undefined;
  private closing = false;
  private inlineLeft = INLINE_BYTES;
  private keys: RepoKeys | undefined;
  /** the most workers this pool starts */
  readonly size: number;

  constructor(
    private readonly master: Buffer,
    size = sealWorkerCount(),
    /** queued plaintext per running worker beyond which another is started (a WAL pool: one job, so a segment's chunks are sealed two at a time) */
    private readonly growBytes = GROW_BYTES,
  ) {
    this.size = Math.max(1, size);
  }

  /** Workers started so far. */
  get started(): number {
    return this.workers.length;
  }

  private start(): Running {
    // From here on workers compress the chunks: this thread only seals tree nodes, a few KiB each.
    if (this.workers.length === 0) releaseCompressScratch();
    // Workers scavenge their garbage buffers themselves (seal-worker.ts); V8 gives new isolates `gc` only with this flag.
    v8.setFlagsFromString('--expose-gc');
    const w = new Worker(new URL('./seal-worker.js', import.meta.url), {
      workerData: { master: this.master },
      // The worker's JS objects are few and short-lived: a small young generation is all it needs (V8's default grows to 16+ MiB).
      resourceLimits: { maxYoungGenerationSizeMb: 2 },
    });
    w.on('message', (r: SealResult) => this.done(r));
    // A worker that dies takes its jobs with it: fail them, and every later job, loudly.
    w.on('error', (e) => this.fail(e));
    w.on('exit', (code) => {
      if (!this.closing) this.fail(new KeepError('INTERNAL', `seal worker exited (code ${code})`));
    });
    const r = { w, jobs: 0, bytes: 0 };
    this.workers.push(r);
    return r;
  }

  /** The worker for the next job: the least loaded, or a new one while all have a backlog. */
  private pick(): Running {
    let best: Running | undefined;
    for (const r of this.workers) if (!best || r.bytes < best.bytes) best = r;
    if (!best || (best.bytes >= this.growBytes && this.workers.length < this.size)) return this.start();
    return best;
  }

  private done(r: SealResult): void {
    const p = this.waiting.get(r.seq);
    if (!p) return;
    this.waiting.delete(r.seq);
    p.worker.jobs--;
    p.worker.bytes -= p.bytes;
    if (r.ok) p.resolve(r.out);
    else p.reject(new KeepError(r.code as KeepErrorCode, r.message));
  }

  private fail(e: Error): void {
    this.broken ??= e;
    for (const p of this.waiting.values()) p.reject(e);
    this.waiting.clear();
  }

  private run(job: SealJob, bytes: number, transfer: ArrayBuffer[]): Promise<{ bytes: Uint8Array; hash?: Uint8Array }[]> {
    if (this.broken) return Promise.reject(this.broken);
    const worker = this.pick();
    worker.jobs++;
    worker.bytes += bytes;
    return new Promise((resolve, reject) => {
      this.waiting.set(job.seq, { resolve, reject, worker, bytes });
      worker.w.postMessage(job, transfer);
    });
  }

  /**
   * Seal chunks (one job: one round trip to a worker). Each result has its
   * storage hash and BLOB_ROOM around it. `handOver`: the caller gives up the
   * plaintext buffers (saves a copy each).
   */
  async sealMany(salt: Buffer, items: { id: Id; plaintext: Uint8Array }[], compression: Compression, handOver = false): Promise<SealedBlob[]> {
    if (items.length === 0) return [];
    let total = 0;
    for (const it of items) total += it.plaintext.length;
    // A chunk the caller gives up, in a chunk buffer, is sealed where it lies and its buffer recycled once written.
    const inPlace = items.map((it) => handOver && isChunkBuffer(it.plaintext));
    const blob = (i: number, bytes: Buffer, hash: Buffer): SealedBlob =>
      inPlace[i] ? { id: items[i].id, bytes, hash, roomy: true, release: () => recycleChunkBuffer(bytes.buffer) } : { id: items[i].id, bytes, hash, roomy: true };
    if (this.workers.length === 0 && total <= this.inlineLeft) {
      // Too little so far to pay for a worker (~16 MiB and a start-up): seal here.
      this.inlineLeft -= total;
      const keys = (this.keys ??= deriveKeys(this.master));
      return items.map((it, i) => {
        const { bytes, hash } = sealForUpload(keys, salt, it.id, it.plaintext, compression, inPlace[i]);
        return blob(i, bytes, hash);
      });
    }
    const transfer: ArrayBuffer[] = [];
    const sent = items.map((it, i) => {
      const p = inPlace[i] ? it.plaintext : transferable(it.plaintext, handOver);
      transfer.push(p.buffer as ArrayBuffer);
      return { id: it.id, plaintext: p, inPlace: inPlace[i] };
    });
    const out = await this.run({ op: 'seal', seq: this.seq++, salt, compression, items: sent }, total, transfer);
    return out.map((o, i) => blob(i, asBuffer(o.bytes), asBuffer(o.hash!)));
  }

  /** Seal one chunk; returns its stored bytes. `handOver`: the caller gives up `plaintext` (saves a copy). */
  async seal(salt: Buffer, id: Id, plaintext: Uint8Array, compression: Compression, handOver = false): Promise<Buffer> {
    const [b] = await this.sealMany(salt, [{ id, plaintext }], compression, handOver);
    return b.bytes;
  }

  /** Decrypt, decompress and verify a blob. `handOver`: the caller gives up `stored`. */
  async open(id: Id, stored: Uint8Array, handOver = false): Promise<Buffer> {
    const s = transferable(stored, handOver);
    const [o] = await this.run({ op: 'open', seq: this.seq++, id, stored: s }, stored.length, [s.buffer as ArrayBuffer]);
    return asBuffer(o.bytes);
  }

  async close(): Promise<void> {
    this.closing = true;
    await Promise.all(this.workers.map((x) => x.w.terminate()));
  }
}
