import os from 'node:os';
import { Worker } from 'node:worker_threads';
import { Compression } from '../compress.js';
import { KeepError, KeepErrorCode } from '../errors.js';
import { Id } from '../ids.js';
import { SealJob, SealResult } from './seal-jobs.js';

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

/**
 * Worker threads that seal (zstd + AES-GCM) and open blobs, so both cores
 * work while the main thread reads, chunks and hashes. Each worker takes
 * jobs round-robin by least load; callers bound how many they keep in flight.
 */
export class SealPool {
  private readonly workers: { w: Worker; load: number }[] = [];
  private readonly waiting = new Map<number, { resolve: (b: Buffer) => void; reject: (e: Error) => void; worker: number }>();
  private seq = 0;
  private broken: Error | undefined;
  private closing = false;

  /** One worker per core; KEEP_SEAL_WORKERS overrides (fewer workers: less memory, ~60 MB each at full speed). */
  constructor(master: Buffer, size = Number(process.env.KEEP_SEAL_WORKERS) || Math.max(1, os.availableParallelism())) {
    for (let i = 0; i < size; i++) {
      const w = new Worker(new URL('./seal-worker.js', import.meta.url), { workerData: { master } });
      w.on('message', (r: SealResult) => this.done(r));
      // A worker that dies takes its jobs with it: fail them, and every later job, loudly.
      w.on('error', (e) => this.fail(e));
      w.on('exit', (code) => {
        if (!this.closing) this.fail(new KeepError('INTERNAL', `seal worker exited (code ${code})`));
      });
      this.workers.push({ w, load: 0 });
    }
  }

  get size(): number {
    return this.workers.length;
  }

  private done(r: SealResult): void {
    const p = this.waiting.get(r.seq);
    if (!p) return;
    this.waiting.delete(r.seq);
    this.workers[p.worker].load--;
    if (r.ok) p.resolve(Buffer.from(r.bytes.buffer, r.bytes.byteOffset, r.bytes.byteLength));
    else p.reject(new KeepError(r.code as KeepErrorCode, r.message));
  }

  private fail(e: Error): void {
    this.broken ??= e;
    for (const p of this.waiting.values()) p.reject(e);
    this.waiting.clear();
  }

  private run(job: SealJob, transfer: ArrayBuffer[]): Promise<Buffer> {
    if (this.broken) return Promise.reject(this.broken);
    let best = 0;
    for (let i = 1; i < this.workers.length; i++) if (this.workers[i].load < this.workers[best].load) best = i;
    this.workers[best].load++;
    return new Promise((resolve, reject) => {
      this.waiting.set(job.seq, { resolve, reject, worker: best });
      this.workers[best].w.postMessage(job, transfer);
    });
  }

  /** Seal a chunk. `handOver`: the caller gives up `plaintext` (saves a copy). */
  seal(salt: Buffer, id: Id, plaintext: Uint8Array, compression: Compression, handOver = false): Promise<Buffer> {
    const p = transferable(plaintext, handOver);
    return this.run({ op: 'seal', seq: this.seq++, salt, id, plaintext: p, compression }, [p.buffer as ArrayBuffer]);
  }

  /** Decrypt, decompress and verify a blob. `handOver`: the caller gives up `stored`. */
  open(id: Id, stored: Uint8Array, handOver = false): Promise<Buffer> {
    const s = transferable(stored, handOver);
    return this.run({ op: 'open', seq: this.seq++, id, stored: s }, [s.buffer as ArrayBuffer]);
  }

  async close(): Promise<void> {
    this.closing = true;
    await Promise.all(this.workers.map((x) => x.w.terminate()));
  }
}
