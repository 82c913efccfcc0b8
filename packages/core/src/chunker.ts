import fs from 'node:fs';
import { get_chunks } from 'fastcdc-wasm';
import { KeepError } from './errors.js';

/** Content-defined chunking parameters, fixed per repository (recorded in its config). */
export interface ChunkerParams {
  min: number;
  avg: number;
  max: number;
}

export const DEFAULT_CHUNKER: ChunkerParams = { min: 256 * 1024, avg: 1024 * 1024, max: 4 * 1024 * 1024 };

export function validateChunkerParams(p: ChunkerParams): ChunkerParams {
  // fastcdc asserts min >= 64, avg >= 256, max >= 1024: a smaller size would pass here and then crash every backup.
  const ok =
    Number.isInteger(p.min) && Number.isInteger(p.avg) && Number.isInteger(p.max) && 64 <= p.min && p.min <= p.avg && 256 <= p.avg && p.avg <= p.max && 1024 <= p.max && p.max <= 64 * 1024 * 1024;
  if (!ok) throw new KeepError('INVALID_ARGUMENT', `chunker sizes must satisfy 64 <= min <= avg <= max <= 64 MiB with avg >= 256 and max >= 1024, got ${JSON.stringify(p)}`);
  return p;
}

/** --chunk-min/avg/max in bytes (K, M suffixes allowed); recorded in config.json, fixed for the repository's life. */
export function parseChunkerSizes(min?: string, avg?: string, max?: string): ChunkerParams | undefined {
  if (min === undefined && avg === undefined && max === undefined) return undefined;
  const size = (v: string | undefined, d: number, name: string) => {
    if (v === undefined) return d;
    const m = /^(\d+)([KkMm]?)i?[Bb]?$/.exec(v);
    if (!m) throw new KeepError('INVALID_ARGUMENT', `${name} takes a size like 512K or 2M, not ${v}`);
    return Number(m[1]) * (m[2] ? (m[2].toUpperCase() === 'K' ? 1024 : 1024 * 1024) : 1);
  };
  return validateChunkerParams({ min: size(min, DEFAULT_CHUNKER.min, '--chunk-min'), avg: size(avg, DEFAULT_CHUNKER.avg, '--chunk-avg'), max: size(max, DEFAULT_CHUNKER.max, '--chunk-max') });
}

/**
 * Streaming FastCDC with bounded memory.
 *
 * Cut points must not depend on how the input arrives. FastCDC decides each cut
 * from the bytes since the previous cut only, so every chunk that ends before
 * the end of the window we scanned is final; the last one may have been cut
 * short by the window edge, so its bytes are carried into the next window and
 * re-scanned from its start. Memory is the carried chunk (< max) plus one
 * window, whatever the file size.
 */
export class StreamChunker {
  /** The window is buf[0, len). Pushes append in place: concatenating per push copied the whole window for every small read. */
  private buf: Buffer = Buffer.alloc(0);
  private len = 0;

  constructor(private readonly params: ChunkerParams) {
    validateChunkerParams(params);
  }

  /** Feed bytes (copied in; the caller may reuse `data`); returns the chunks now final, each in its own buffer. */
  push(data: Uint8Array): Buffer[] {
    if (this.len + data.length > this.buf.length) {
      // Doubling keeps appends linear; no 2 * max floor, so a small file costs its own size.
      const b = Buffer.allocUnsafe(Math.max(this.len + data.length, 2 * this.buf.length));
      this.buf.copy(b, 0, 0, this.len);
      this.buf = b;
    }
    this.buf.set(data, this.len);
    this.len += data.length;
    // Scanning is cheaper in large windows: wait until a window holds at least
    // two max-size chunks, so the carried tail is re-scanned rarely.
    if (this.len < 2 * this.params.max) return [];
    return this.cut(false);
  }

  /** End of input: every remaining byte becomes chunks. */
  finish(): Buffer[] {
    if (this.len === 0) return [];
    return this.cut(true);
  }

  private cut(final: boolean): Buffer[] {
    const w = this.buf.subarray(0, this.len);
    const bounds = get_chunks(w, this.params.min, this.params.avg, this.params.max);
    const last = final ? bounds.length - 1 : bounds.length - 2;
    const out: Buffer[] = [];
    for (let i = 0; i < last; i++) out.push(ownCopy(w.subarray(bounds[i], bounds[i + 1])));
    const keepFrom = final ? w.length : bounds[Math.max(last, 0)];
    // Chunks are copies, so the window is reused: the tail (< max) moves to its front.
    this.buf.copyWithin(0, keepFrom, this.len);
    this.len -= keepFrom;
    if (final) this.buf = Buffer.alloc(0);
    return out;
  }
}

/**
 * A chunk in an ArrayBuffer of its own: it can be transferred to a worker
 * without another copy, and holding it does not pin the chunker's window.
 */
function ownCopy(view: Buffer): Buffer {
  const b = Buffer.allocUnsafeSlow(view.length);
  view.copy(b);
  return b;
}

/** Read size for files: large reads, one reused buffer (no garbage per read). */
const FILE_READ_SIZE = 4 * 1024 * 1024;

/** Read buffers shared by sequential chunkFile calls (one per concurrent reader). */
const readBuffers: Buffer[] = [];

/**
 * Chunk a file, reading it through a reused buffer: a fresh 4 MiB buffer per
 * file made small-file backups spend their time in the garbage collector.
 * `sizeHint` (the lstat size) lets tiny files skip the big buffer entirely.
 */
export async function* chunkFile(file: string | Buffer, params: ChunkerParams, sizeHint = FILE_READ_SIZE): AsyncGenerator<Buffer> {
  const fh = await fs.promises.open(file, 'r');
  const small = sizeHint < 64 * 1024;
  const buf = small ? Buffer.allocUnsafe(sizeHint + 1) : (readBuffers.pop() ?? Buffer.allocUnsafeSlow(FILE_READ_SIZE));
  try {
    const chunker = new StreamChunker(params);
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      yield* chunker.push(buf.subarray(0, bytesRead));
    }
    yield* chunker.finish();
  } finally {
    if (!small && readBuffers.length < 4) readBuffers.push(buf);
    await fh.close();
  }
}

/** Chunk a whole async stream of buffers (a file, stdin). */
export async function* chunkStream(source: AsyncIterable<Uint8Array>, params: ChunkerParams): AsyncGenerator<Buffer> {
  const chunker = new StreamChunker(params);
  for await (const data of source) yield* chunker.push(data);
  yield* chunker.finish();
}
