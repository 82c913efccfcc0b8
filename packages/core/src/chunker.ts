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
  const ok = Number.isInteger(p.min) && Number.isInteger(p.avg) && Number.isInteger(p.max) && 64 <= p.min && p.min <= p.avg && p.avg <= p.max && p.max <= 64 * 1024 * 1024;
  if (!ok) throw new KeepError('INVALID_ARGUMENT', `chunker sizes must satisfy 64 <= min <= avg <= max <= 64 MiB, got ${JSON.stringify(p)}`);
  return p;
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
  private window: Buffer = Buffer.alloc(0);

  constructor(private readonly params: ChunkerParams) {
    validateChunkerParams(params);
  }

  /** Feed bytes; returns the chunks that are now final (copies the caller may keep). */
  push(data: Uint8Array): Buffer[] {
    this.window = this.window.length === 0 ? Buffer.from(data) : Buffer.concat([this.window, data]);
    // Scanning is cheaper in large windows: wait until a window holds at least
    // two max-size chunks, so the carried tail is re-scanned rarely.
    if (this.window.length < 2 * this.params.max) return [];
    return this.cut(false);
  }

  /** End of input: every remaining byte becomes chunks. */
  finish(): Buffer[] {
    if (this.window.length === 0) return [];
    return this.cut(true);
  }

  private cut(final: boolean): Buffer[] {
    const w = this.window;
    const bounds = get_chunks(w, this.params.min, this.params.avg, this.params.max);
    const last = final ? bounds.length - 1 : bounds.length - 2;
    const out: Buffer[] = [];
    for (let i = 0; i < last; i++) out.push(w.subarray(bounds[i], bounds[i + 1]));
    const keepFrom = final ? w.length : bounds[Math.max(last, 0)];
    this.window = keepFrom >= w.length ? Buffer.alloc(0) : Buffer.from(w.subarray(keepFrom));
    return out;
  }
}

/** Chunk a whole async stream of buffers (a file, stdin). */
export async function* chunkStream(source: AsyncIterable<Uint8Array>, params: ChunkerParams): AsyncGenerator<Buffer> {
  const chunker = new StreamChunker(params);
  for await (const data of source) yield* chunker.push(data);
  yield* chunker.finish();
}
