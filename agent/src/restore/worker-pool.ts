import v8 from 'node:v8';
import { Worker } from 'node:worker_threads';
import { Id, KeepError, KeepErrorCode, sealWorkerCount } from '@keep/core';
import { packBatch, RestoreJob, RestoreMessage, RestoreResult } from './restore-jobs.js';
import { EntryMeta, readUmask } from './target-fs.js';

/** Files and bytes per message to a worker: large enough that a message's cost is small beside its work. */
const BATCH_FILES = 256;
const BATCH_BYTES = 4 * 1024 * 1024;
/** Batches a worker holds: one being written, one queued behind it, so it never waits for the main thread. */
const BATCHES_PER_WORKER = 2;

/** A small file to write: stored bytes of its one chunk (none for an empty file). */
export interface SmallFile extends EntryMeta {
  path: Buffer;
  id?: Id;
  stored?: Buffer;
  size: number;
  /** created with its owner already: no chown */
  owned?: boolean;
}

/** Writes one large file on one worker, chunk by chunk in order. */
export interface LargeFileWriter {
  /** Decrypt, verify and append one chunk; resolves with its plaintext length once written. */
  chunk(id: Id, stored: Buffer): Promise<number>;
  /** Check the size, set metadata (the owner unless `owned`: created with it), close. */
  end(meta: EntryMeta, size: number, owned?: boolean): Promise<number>;
  /** Close without finishing (after a failure elsewhere). */
  abort(): Promise<void>;
}

/**
 * The worker module: next to this one in the tsc output (agent/dist/restore/),
 * one directory down from the agent's one-file bundle (agent/dist/keep.cjs),
 * which holds this module too. (A bundle of the worker itself measured no
 * faster to start: most of its ~100 ms is Node's worker start and the native
 * zstd and BLAKE3 modules.)
 */
const WORKER = new URL(/\.[cm]js$/.test(import.meta.url) ? './restore/restore-worker.js' : './restore-worker.js', import.meta.url);

interface Waiter {
  resolve(bytes: number): void;
  reject(e: Error): void;
  worker: number;
  batch: boolean;
}

interface Pending {
  file: SmallFile;
  resolve(bytes: number): void;
  reject(e: Error): void;
}

/** Copy byte arrays into one ArrayBuffer (transferred with the message); returns views in order. */
function pack(parts: (Uint8Array | undefined)[]): { buffer: ArrayBuffer; views: (Uint8Array | undefined)[] } {
  let n = 0;
  for (const p of parts) if (p) n += p.length;
  const buffer = new ArrayBuffer(n);
  const all = new Uint8Array(buffer);
  let o = 0;
  const views = parts.map((p) => {
    if (!p) return undefined;
    all.set(p, o);
    const v = all.subarray(o, o + p.length);
    o += p.length;
    return v;
  });
  return { buffer, views };
}

/**
 * Stored bytes that own their whole ArrayBuffer (getBlob hands each caller
 * its own) move to the worker with the message instead of being copied into
 * it; they are then gone from this thread. Anything else is copied.
 */
function movable(u: Uint8Array | undefined, moving: Set<ArrayBufferLike>): u is Uint8Array {
  return !!u && u.byteLength > 0 && u.byteOffset === 0 && u.byteLength === u.buffer.byteLength && u.buffer instanceof ArrayBuffer && !moving.has(u.buffer);
}

function toError(r: Extract<RestoreResult, { ok: false }>): Error {
  if (!r.errno) return new KeepError(r.code as KeepErrorCode, r.message);
  const e = new Error(r.message) as NodeJS.ErrnoException;
  e.code = r.errno;
  return e;
}

/** Restore workers: one fewer than sealing gets (KEEP_SEAL_WORKERS applies to both), so the main thread keeps a core for the network and walk. */
export function restoreWorkerCount(): number {
  return Math.max(1, sealWorkerCount() - 1);
}

/**
 * Worker threads that decrypt, verify and write restored files
 * (restore-worker.ts). Small files are gathered into batches (one message per
 * batch, not per file), sent to the worker with the fewest queued; a large
 * file stays on one worker so its chunks are written in order.
 */
export class RestorePool {
  private readonly workers: { w: Worker; batches: number; load: number }[] = [];
  private readonly waiting = new Map<number, Waiter>();
  private pending: Pending[] = [];
  private pumpScheduled = false;
  private seq = 0;
  private files = 0;
  private broken: Error | undefined;
  private closing = false;

  /** Workers start keyless (a restore starts them while scrypt runs): `unlock` before the first file. */
  constructor(
    size: number,
    private readonly chown: boolean,
  ) {
    // Workers scavenge their garbage buffers themselves (restore-worker.ts); V8 gives new isolates `gc` only with this flag (as the seal pool does).
    v8.setFlagsFromString('--expose-gc');
    for (let i = 0; i < Math.max(1, size); i++) {
      const w = new Worker(WORKER, {
        // Few, short-lived JS objects: a small young generation is all a worker needs (V8's default grows to 16+ MiB).
        resourceLimits: { maxYoungGenerationSizeMb: 2 },
      });
      w.on('message', (r: RestoreResult) => this.done(r));
      w.on('error', (e) => this.fail(e));
      w.on('exit', (code) => {
        if (!this.closing) this.fail(new KeepError('INTERNAL', `restore worker exited (code ${code})`));
      });
      this.workers.push({ w, batches: 0, load: 0 });
    }
  }

  /** Give the workers the master key (messages keep their order: it arrives before any file). */
  unlock(master: Buffer, maxChunk: number): void {
    const umask = readUmask();
    for (const x of this.workers) x.w.postMessage({ op: 'unlock', master, maxChunk, umask } satisfies RestoreMessage);
  }

  /** Write a small file; resolves with its size once it is on disk with its metadata. */
  writeFile(file: SmallFile): Promise<number> {
    if (this.broken) return Promise.reject(this.broken);
    return new Promise<number>((resolve, reject) => {
      this.pending.push({ file, resolve, reject });
      if (!this.pumpScheduled) {
        // Files that arrive in the same turn (one network read) share a message.
        this.pumpScheduled = true;
        setImmediate(() => {
          this.pumpScheduled = false;
          this.pump();
        });
      }
    });
  }

  /** Start a large file on the least loaded worker. */
  largeFile(path: Buffer): LargeFileWriter {
    const worker = this.least();
    const file = this.files++;
    const opened = this.post(worker, { op: 'begin', seq: this.seq++, file, path: new Uint8Array(path) }, [], 0, false);
    opened.catch(() => undefined); // reported again by chunk() and end()
    return {
      chunk: (id, stored) => {
        const moved = movable(stored, new Set());
        const { buffer, views } = pack([id, moved ? undefined : stored]);
        const transfer = moved ? [buffer, stored.buffer as ArrayBuffer] : [buffer];
        return this.post(worker, { op: 'chunk', seq: this.seq++, file, id: views[0]!, stored: moved ? stored : views[1]! }, transfer, stored.length, false);
      },
      end: (m, size, owned) => this.post(worker, { op: 'end', seq: this.seq++, file, size, mode: m.mode, uid: m.uid, gid: m.gid, mtime: m.mtime, chown: this.chown && !owned }, [], 0, false),
      abort: async () => {
        if (this.broken) return;
        await this.post(worker, { op: 'end', seq: this.seq++, file, size: 0, mode: 0, uid: 0, gid: 0, mtime: 0, chown: false, abort: true }, [], 0, false).catch(() => undefined);
      },
    };
  }

  private least(): number {
    let best = 0;
    for (let i = 1; i < this.workers.length; i++) {
      const a = this.workers[i];
      const b = this.workers[best];
      if (a.batches < b.batches || (a.batches === b.batches && a.load < b.load)) best = i;
    }
    return best;
  }

  private pump(): void {
    while (this.pending.length && !this.broken) {
      const worker = this.least();
      if (this.workers[worker].batches >= BATCHES_PER_WORKER) return;
      let n = 0;
      let bytes = 0;
      while (n < this.pending.length && n < BATCH_FILES) {
        const f = this.pending[n].file;
        const size = (f.stored?.length ?? 0) + f.path.length + (f.id?.length ?? 0);
        if (n > 0 && bytes + size > BATCH_BYTES) break;
        bytes += size;
        n++;
      }
      const batch = this.pending.slice(0, n);
      this.pending = this.pending.slice(n);
      this.send(worker, batch, bytes);
    }
  }

  private send(worker: number, batch: Pending[], bytes: number): void {
    const moving = new Set<ArrayBufferLike>();
    const stored = batch.map((p): Uint8Array | null => {
      const s = p.file.stored;
      if (!s) return null;
      const m = movable(s, moving) ? s : new Uint8Array(s); // (else a copy of its own, moved with the message)
      moving.add(m.buffer);
      return m;
    });
    const files = packBatch(
      batch.map((p) => p.file),
      stored,
    );
    this.post(worker, { op: 'files', seq: this.seq++, batch: files, chown: this.chown }, [files.meta.buffer as ArrayBuffer, files.bytes.buffer as ArrayBuffer, ...(moving as Set<ArrayBuffer>)], bytes, true).then(
      () => {
        for (const p of batch) p.resolve(p.file.size);
      },
      (e: Error & { index?: number }) => {
        // Files before the failed one are written; the rest share its error.
        const at = e.index ?? 0;
        batch.forEach((p, i) => (i < at ? p.resolve(p.file.size) : p.reject(e)));
      },
    );
  }

  private post(worker: number, job: RestoreJob, transfer: ArrayBuffer[], bytes: number, batch: boolean): Promise<number> {
    if (this.broken) return Promise.reject(this.broken);
    const w = this.workers[worker];
    w.load += bytes;
    if (batch) w.batches++;
    return new Promise<number>((resolve, reject) => {
      this.waiting.set(job.seq, {
        resolve: (n) => {
          w.load -= bytes;
          resolve(n);
        },
        reject: (e) => {
          w.load -= bytes;
          reject(e);
        },
        worker,
        batch,
      });
      w.w.postMessage(job, transfer);
    });
  }

  private done(r: RestoreResult): void {
    const p = this.waiting.get(r.seq);
    if (!p) return;
    this.waiting.delete(r.seq);
    if (p.batch) this.workers[p.worker].batches--;
    if (r.ok) p.resolve(r.bytes);
    else {
      const e = toError(r);
      (e as { index?: number }).index = r.index;
      p.reject(e);
    }
    if (this.pending.length) this.pump();
  }

  private fail(e: Error): void {
    this.broken ??= e;
    for (const p of this.waiting.values()) p.reject(this.broken);
    this.waiting.clear();
    for (const p of this.pending) p.reject(this.broken);
    this.pending = [];
  }

  async close(): Promise<void> {
    this.closing = true;
    await Promise.all(this.workers.map((x) => x.w.terminate()));
  }
}
