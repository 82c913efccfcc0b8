import fs from 'node:fs';
import { parentPort } from 'node:worker_threads';
import { BlobType, deriveKeys, discardBuffer, garbagePacer, Id, KeepError, openBlob, openBlobInPlace, OpenScratch, RepoKeys, toHex } from '@keep/core';
import { namedError as named, pathText as show } from './named-error.js';
import { RestoreJob, RestoreMessage, RestoreResult, SmallFileJob, unpackBatch } from './restore-jobs.js';
import { createFile, createFileAsync, discard, exactCreateMode, finishSparse, partialName, publish, setMetaFd, writeSparse } from './target-fs.js';

/*
 * A restore worker: decrypts blobs, proves each against its id, and writes
 * files. A file system that stalls (a busy ext4 journal, a long inode search)
 * holds up this thread at most, never the main thread's network and walk;
 * when creates are slow, small files' creates run a few at a time on the
 * thread pool, overlapping each other and decryption.
 */

/** Set by the pool's 'unlock', which comes before any file. */
let keys: RepoKeys | undefined;
/** The repository's max chunk size: no data blob decompresses to more. */
let maxChunk = 0;
/** The process's umask (from the pool: undefined when unknown), for exactCreateMode. */
let umask: number | undefined;
const port = parentPort!;
const asBuffer = (u: Uint8Array) => Buffer.from(u.buffer, u.byteOffset, u.byteLength);

/** Scavenges the dead buffers decryption leaves every few MiB (worker-pool.ts exposes `gc`). */
const produced = garbagePacer();

/** The buffer compressed chunks are decompressed into when written as soon as they are opened (see openChunk). */
const scratch = new OpenScratch();

/**
 * The plaintext of a data chunk, authenticated and re-hashed against `id`.
 * `reuse`: decrypted in `stored` itself (this thread's: it came with the
 * job) and decompressed into the scratch buffer, so valid only until the
 * next reusing call: for a caller that writes it before it yields to the
 * event loop (another message would open its chunk into the same buffer).
 */
function openChunk(id: Id, stored: Buffer, reuse: boolean): Buffer {
  if (!keys) throw new KeepError('INTERNAL', 'restore worker given a file before the key');
  const { type, plaintext } = reuse ? openBlobInPlace(keys, id, stored, scratch, maxChunk) : openBlob(keys, id, stored, maxChunk);
  if (type !== BlobType.Data) throw new KeepError('CORRUPT', `blob ${toHex(id)} should be file data but is a tree`);
  // Garbage once written: the stored bytes (moved here for this chunk) and the cipher's output; without reuse, the plaintext too.
  produced(stored.length * 2 + (reuse ? 0 : plaintext.length));
  return plaintext;
}

/**
 * Creates are synchronous while they are quick (a thread-pool round trip
 * costs more than a create on most file systems). The first creates of each
 * batch are timed; if they average more than SLOW_CREATE_MS (ext4 searching
 * for a free inode after many deletions, a busy journal), the rest of the
 * batch's creates run on the thread pool, CREATES_AHEAD at once, overlapping
 * each other and this thread's decryption.
 */
const PROBE_CREATES = 8;
const SLOW_CREATE_MS = 0.15;
const CREATES_AHEAD = 4;

const decrypted = (f: SmallFileJob, reuse: boolean): Buffer => {
  const data = f.id && f.stored ? openChunk(asBuffer(f.id), asBuffer(f.stored), reuse) : Buffer.alloc(0);
  if (data.length !== f.size) throw new KeepError('CORRUPT', `${show(f.path)}: restored ${data.length} bytes, the snapshot says ${f.size}`);
  return data;
};

/**
 * Content (holes kept), metadata and close of a file created with `mode`
 * (exactCreateMode's); one that cannot be written is removed, not left short.
 * A new file that ends in written bytes (or is empty) has its size already:
 * no ftruncate.
 */
function fill(fd: number, data: Buffer, f: SmallFileJob, chown: boolean, mode: number | undefined): number {
  try {
    if (!writeSparse(fd, data, 0) && data.length > 0) finishSparse(fd, data.length);
    setMetaFd(fd, f, chown && !f.owned, mode);
  } catch (e) {
    discard(f.path);
    throw named(f.path, e);
  } finally {
    fs.closeSync(fd);
  }
  return data.length;
}


/**
 * Write a batch of small files; returns the bytes written. A failure carries
 * the index of its file (those before it are written).
 */
async function writeSmallFiles(files: SmallFileJob[], chown: boolean): Promise<number> {
  let bytes = 0;
  let i = 0;
  let createMs = 0;
  try {
    for (; i < files.length && (i < PROBE_CREATES || createMs / i < SLOW_CREATE_MS); i++) {
      const data = decrypted(files[i], true);
      const mode = exactCreateMode(files[i].mode, umask);
      const t = performance.now();
      const fd = createFile(asBuffer(files[i].path), mode);
      createMs += performance.now() - t;
      bytes += fill(fd, data, files[i], chown, mode);
    }
  } catch (e) {
    const err = named(files[i].path, e);
    (err as { index?: number }).index = i;
    throw err;
  }
  if (i === files.length) return bytes;

  const fds: Promise<number>[] = [];
  let next = i;
  const create = () => {
    const p = createFileAsync(asBuffer(files[next].path), exactCreateMode(files[next].mode, umask));
    p.catch(() => undefined); // awaited in order below
    fds[next++] = p;
  };
  while (next < Math.min(i + CREATES_AHEAD, files.length)) create();
  /** descriptors handed out so far (the ones after are closed on failure) */
  let taken = i;
  try {
    for (; i < files.length; i++) {
      const fd = await fds[i];
      // Decrypted after the wait, into the scratch buffer (written before this yields again; other messages
      // run while it waits): a fresh buffer per file costs page faults, in user and kernel time. A blob that
      // fails leaves descriptor i untaken: closed and its file removed below.
      const data = decrypted(files[i], true);
      taken = i + 1;
      if (next < files.length) create();
      bytes += fill(fd, data, files[i], chown, exactCreateMode(files[i].mode, umask));
    }
    return bytes;
  } catch (e) {
    const err = named(files[i].path, e);
    (err as { index?: number }).index = i;
    // Files created ahead of the failure: closed and removed (an empty file under its name would pass for restored).
    for (let j = taken; j < next; j++)
      await fds[j].then(
        (fd) => (fs.closeSync(fd), discard(files[j].path)),
        () => undefined,
      );
    throw err;
  }
}

/**
 * Large files being written, by the pool's file number: under a partial name
 * (target-fs.ts partialName) until every chunk is written and the size checked,
 * then renamed to theirs. A file that fails midway is removed: no truncated
 * file under the real name, and the error names it.
 */
const open = new Map<number, { fd: number; path: Uint8Array; partial: Buffer; pos: number; error?: unknown; endWritten?: boolean }>();

function closeFailed(file: number, e: unknown): never {
  const f = open.get(file);
  if (f && f.error === undefined) {
    f.error = named(f.path, e);
    fs.closeSync(f.fd);
    discard(f.partial);
  }
  throw f?.error ?? e;
}

function run(job: RestoreJob): number | Promise<number> {
  switch (job.op) {
    case 'files':
      return writeSmallFiles(unpackBatch(job.batch), job.chown);
    case 'begin': {
      const partial = partialName(job.path, job.file);
      try {
        open.set(job.file, { fd: createFile(partial), path: job.path, partial, pos: 0 });
      } catch (e) {
        // remembered, so its chunks and end report this error rather than "not open"
        open.set(job.file, { fd: -1, path: job.path, partial, pos: 0, error: named(job.path, e) });
        throw open.get(job.file)!.error;
      }
      return 0;
    }
    case 'chunk': {
      const f = open.get(job.file);
      if (!f) throw new KeepError('INTERNAL', `restore worker: chunk for file ${job.file}, which is not open`);
      if (f.error !== undefined) throw f.error;
      try {
        const data = openChunk(asBuffer(job.id), asBuffer(job.stored), true);
        f.endWritten = writeSparse(f.fd, data, f.pos);
        f.pos += data.length;
        return data.length;
      } catch (e) {
        closeFailed(job.file, e);
      }
    }
    case 'end': {
      const f = open.get(job.file);
      if (!f) throw new KeepError('INTERNAL', `restore worker: end of file ${job.file}, which is not open`);
      open.delete(job.file);
      if (f.error !== undefined) {
        if (job.abort) return 0;
        throw f.error;
      }
      let complete = false;
      try {
        if (!job.abort) {
          if (f.pos !== job.size) throw new KeepError('CORRUPT', `${show(f.path)}: restored ${f.pos} bytes, the snapshot says ${job.size}`);
          if (!f.endWritten && f.pos > 0) finishSparse(f.fd, f.pos);
          setMetaFd(f.fd, job, job.chown);
          complete = true;
        }
      } catch (e) {
        throw named(f.path, e);
      } finally {
        fs.closeSync(f.fd);
        if (!complete) discard(f.partial);
      }
      if (!complete) return f.pos; // (aborted: removed)
      try {
        publish(f.partial, f.path);
      } catch (e) {
        discard(f.partial);
        throw named(f.path, e);
      }
      return f.pos;
    }
  }
}

function failed(seq: number, e: unknown): RestoreResult {
  const err = e as Error & { code?: string; index?: number };
  return {
    seq,
    ok: false,
    code: e instanceof KeepError ? e.code : 'INTERNAL',
    message: err.message,
    errno: e instanceof KeepError ? undefined : err.code,
    index: err.index,
  };
}

/**
 * The buffers a job brought with it (moved here, see worker-pool.ts). They are
 * garbage once it is done, but a batch of small files outlives the young
 * collections the pacer starts while it is written, so V8 would keep them
 * for a full collection, which this thread rarely needs: they are freed now.
 */
function movedBuffers(job: RestoreJob): Set<ArrayBuffer> {
  const bufs = new Set<ArrayBuffer>();
  const add = (u: ArrayBufferView | undefined) => u && u.buffer instanceof ArrayBuffer && bufs.add(u.buffer);
  if (job.op === 'files') {
    add(job.batch.meta), add(job.batch.bytes);
    for (const s of job.batch.stored) add(s ?? undefined);
  }
  else if (job.op === 'chunk') add(job.id), add(job.stored);
  return bufs;
}

const release = (job: RestoreJob) => {
  for (const ab of movedBuffers(job)) discardBuffer(ab);
};

// Batches of small files wait on the thread pool's creates; large files' steps are synchronous, so each file's stay in order.
port.on('message', (job: RestoreMessage) => {
  if (job.op === 'unlock') {
    keys = deriveKeys(Buffer.from(job.master));
    maxChunk = job.maxChunk;
    umask = job.umask;
    return;
  }
  let bytes: number | Promise<number>;
  try {
    bytes = run(job);
  } catch (e) {
    release(job);
    port.postMessage(failed(job.seq, e));
    return;
  }
  if (typeof bytes === 'number') {
    release(job);
    port.postMessage({ seq: job.seq, ok: true, bytes } satisfies RestoreResult);
  } else
    bytes.then(
      (n) => {
        release(job);
        port.postMessage({ seq: job.seq, ok: true, bytes: n } satisfies RestoreResult);
      },
      (e: unknown) => {
        release(job);
        port.postMessage(failed(job.seq, e));
      },
    );
});
