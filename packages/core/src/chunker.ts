import fs from 'node:fs';
import * as fastcdc from 'fastcdc-wasm';
import { CHUNK_ROOM } from './blob/seal.js';
import { type ChunkerParams, type Chunking, validateChunkerParams } from './chunker-params.js';
import { KeepError } from './errors.js';
import { gearBounds } from './gear-cdc.js';
import { discardBuffer } from './parallel/discard.js';

export * from './chunker-params.js';

/** fastcdc-wasm's exports below its JS wrapper (wasm-bindgen 0.2 ABI of fastcdc-wasm 0.1.0). */
interface RawCdc {
  memory: { buffer: ArrayBuffer };
  get_chunks(retptr: number, ptr: number, len: number, min: number, avg: number, max: number): void;
  __wbindgen_add_to_stack_pointer(delta: number): number;
  __wbindgen_malloc(size: number): number;
  __wbindgen_free(ptr: number, size: number): void;
}

/**
 * The wasm module itself, so windows can live in its memory: the wrapper's
 * get_chunks copies its whole input into wasm memory and back out on every
 * call (the window is rescanned ~1.3 times, so ~2.6 copies of all data).
 * Undefined if the package's shape ever differs: then the wrapper is used.
 */
const raw: RawCdc | undefined = (() => {
  const w = (fastcdc as unknown as { __wasm?: Partial<RawCdc> }).__wasm;
  const fns = ['get_chunks', '__wbindgen_add_to_stack_pointer', '__wbindgen_malloc', '__wbindgen_free'] as const;
  return w && w.memory?.buffer instanceof ArrayBuffer && fns.every((f) => typeof w[f] === 'function') ? (w as RawCdc) : undefined;
})();

/** Chunk boundaries of `len` bytes at `ptr` in wasm memory. */
function rawBounds(r: RawCdc, ptr: number, len: number, p: ChunkerParams): Uint32Array {
  const retptr = r.__wbindgen_add_to_stack_pointer(-16);
  try {
    r.get_chunks(retptr, ptr, len, p.min, p.avg, p.max);
    const ret = new Int32Array(r.memory.buffer, retptr, 2);
    const [at, n] = [ret[0], ret[1]];
    const bounds = new Uint32Array(r.memory.buffer, at, n).slice();
    r.__wbindgen_free(at, n * 4);
    return bounds;
  } finally {
    r.__wbindgen_add_to_stack_pointer(16);
  }
}

/**
 * Windows are regions of the wasm heap, kept for the next chunker when one
 * finishes: wasm memory never shrinks, so reusing them is free, and a backup
 * of many files allocates its window once.
 */
const spareWindows: { ptr: number; cap: number }[] = [];
const abandoned = new FinalizationRegistry<{ ptr: number; cap: number }>((w) => releaseWindow(w));

/** Keeps the largest windows spare (a small one would only be outgrown again). */
function releaseWindow(w: { ptr: number; cap: number }): void {
  if (!raw || w.cap === 0) return;
  spareWindows.push(w);
  spareWindows.sort((a, b) => b.cap - a.cap);
  while (spareWindows.length > 2) {
    const s = spareWindows.pop()!;
    raw.__wbindgen_free(s.ptr, s.cap);
  }
}

/**
 * Largest piece of one push() appended before cutting: bounds the window
 * (2 * max + this) whatever the caller passes. Also the read size of files.
 */
const PUSH_PIECE = 1024 * 1024;

/**
 * Streaming FastCDC with bounded memory.
 *
 * Cut points must not depend on how the input arrives. FastCDC decides each cut
 * from the bytes since the previous cut only, so every chunk that ends before
 * the end of the window we scanned is final; the last one may have been cut
 * short by the window edge, so its bytes are carried into the next window and
 * re-scanned from its start. Memory is the carried chunk (< max) plus one
 * window, whatever the file size.
 *
 * The window lives in the wasm module's memory, where the scan runs: pushed
 * bytes are copied in once, and each chunk is copied out once, into a buffer
 * of its own.
 */
export class StreamChunker {
  /** The window: `len` bytes at `win.ptr` in wasm memory (or in `buf` without the raw module). */
  private win = { ptr: 0, cap: 0 };
  private buf: Buffer = Buffer.alloc(0);
  private len = 0;
  /** cached view of the window (rebuilt when wasm memory grows or the window moves) */
  private view: Uint8Array | undefined;

  /**
   * A window is scanned once it holds this much: then at least its first
   * chunk is final (FastCDC cuts at most at max), and the carried tail (one
   * chunk, ~avg) is re-scanned for every PUSH_PIECE or more of new data.
   */
  private readonly scanAt: number;
  /** The most a window ever holds: a scan's worth less one byte, plus one piece. */
  private readonly maxWindow: number;

  constructor(private readonly params: Chunking) {
    validateChunkerParams(params);
    if (params.keyed && params.gear?.length !== 256) throw new KeepError('INTERNAL', 'a keyed chunker runs with its gear table (chunkingFor)');
    this.scanAt = params.max + PUSH_PIECE;
    this.maxWindow = this.scanAt + PUSH_PIECE;
    abandoned.register(this, this.win, this);
  }

  /** Feed bytes (copied in; the caller may reuse `data`); returns the chunks now final, each in its own buffer. */
  push(data: Uint8Array): Buffer[] {
    const out: Buffer[] = [];
    for (let o = 0; o < data.length; o += PUSH_PIECE) {
      const piece = data.length <= PUSH_PIECE ? data : data.subarray(o, Math.min(data.length, o + PUSH_PIECE));
      this.ensure(this.len + piece.length);
      this.bytes().set(piece, this.len);
      this.len += piece.length;
      if (this.len >= this.scanAt) out.push(...this.cut(false));
    }
    return out;
  }

  /** End of input: every remaining byte becomes chunks; the window goes back for the next chunker. */
  finish(): Buffer[] {
    const out = this.len === 0 ? [] : this.cut(true);
    this.dispose();
    return out;
  }

  /** Give the window back without chunking the rest (the input was abandoned). */
  dispose(): void {
    abandoned.unregister(this);
    releaseWindow(this.win);
    this.win = { ptr: 0, cap: 0 };
    this.buf = Buffer.alloc(0);
    this.len = 0;
  }

  /**
   * Read a whole file into the window and chunk it, synchronously: one copy
   * (file to window), where reading into a buffer and pushing it costs two.
   * For small files, read in one call. A descriptor (number) is read from
   * where it stands and left open (the caller opened it, and closes it).
   */
  static file(file: string | Buffer | number, params: Chunking, sizeHint = 0): Buffer[] {
    const fd = typeof file === 'number' ? file : fs.openSync(file, 'r');
    let c: StreamChunker | undefined;
    try {
      const out: Buffer[] = [];
      let grown: Buffer | undefined;
      // A file no larger than the minimum chunk is one chunk: read into its chunk buffer, no window, no copy,
      // no chunker (most files of a source tree).
      if (sizeHint > 0 && sizeHint <= params.min) {
        const { bytes, grew } = readWhole(fd, sizeHint);
        if (!grew) return bytes.length ? [bytes] : [];
        grown = bytes;
      }
      c = new StreamChunker(params);
      if (grown) {
        // It grew since its lstat: what was read goes through the window like any other file.
        out.push(...c.push(grown));
        recycleChunkBuffer(grown.buffer);
      }
      // At most a piece per read, so the window never outgrows maxWindow whatever the hint says.
      for (let want = Math.min(Math.max(sizeHint + 1, 64 * 1024), PUSH_PIECE); ; ) {
        c.ensure(c.len + want);
        const n = fs.readSync(fd, c.bytes(), c.len, want, null);
        if (n === 0) break;
        c.len += n;
        if (c.len >= c.scanAt) out.push(...c.cut(false));
        want = Math.min(Math.max(want, 64 * 1024), PUSH_PIECE);
      }
      out.push(...c.finish());
      return out;
    } finally {
      if (fd !== file) fs.closeSync(fd);
      c?.dispose();
    }
  }


  /** The window's memory, from its start (views of wasm memory die when it grows: make one per use). */
  private bytes(): Uint8Array {
    if (!raw) return this.buf;
    const mem = raw.memory.buffer;
    if (this.view?.buffer !== mem || this.view.byteOffset !== this.win.ptr || this.view.length !== this.win.cap) this.view = new Uint8Array(mem, this.win.ptr, this.win.cap);
    return this.view;
  }

  private ensure(need: number): void {
    if (!raw) {
      if (need > this.buf.length) {
        // Doubling keeps appends linear; no 2 * max floor, so a small file costs its own size.
        const b = Buffer.allocUnsafe(Math.max(need, 2 * this.buf.length));
        this.buf.copy(b, 0, 0, this.len);
        this.buf = b;
      }
      return;
    }
    if (need <= this.win.cap) return;
    // The smallest spare that fits.
    let spare = -1;
    for (let i = 0; i < spareWindows.length; i++) if (spareWindows[i].cap >= need && (spare < 0 || spareWindows[i].cap < spareWindows[spare].cap)) spare = i;
    // A window is allocated at the most it may ever hold, not grown by doubling: every outgrown size stayed
    // behind in wasm memory, which never shrinks (25 MiB of it for one 9 MiB window). Pages a window never
    // reaches are never touched, so a small file still costs only its own size in memory.
    const cap = Math.max(need, this.maxWindow);
    const fresh = spare >= 0 ? spareWindows.splice(spare, 1)[0] : { ptr: 0, cap };
    if (fresh.ptr === 0) fresh.ptr = raw.__wbindgen_malloc(fresh.cap);
    if (this.len) new Uint8Array(raw.memory.buffer).copyWithin(fresh.ptr, this.win.ptr, this.win.ptr + this.len);
    releaseWindow(this.win);
    // The registry must free the window this chunker holds now, not the one it started with.
    abandoned.unregister(this);
    this.win = fresh;
    abandoned.register(this, this.win, this);
  }

  private cut(final: boolean): Buffer[] {
    const p = this.params;
    let bounds: ArrayLike<number>;
    if (final && this.len <= p.min) bounds = [0, this.len]; // FastCDC never cuts inside its minimum size
    else if (p.gear) bounds = gearBounds(this.bytes(), this.len, p, p.gear);
    else if (raw) bounds = rawBounds(raw, this.win.ptr, this.len, p);
    else bounds = fastcdc.get_chunks(this.buf.subarray(0, this.len), p.min, p.avg, p.max);
    const w = this.bytes();
    const last = final ? bounds.length - 1 : bounds.length - 2;
    const out: Buffer[] = [];
    for (let i = 0; i < last; i++) out.push(ownCopy(w.subarray(bounds[i], bounds[i + 1])));
    const keepFrom = final ? this.len : bounds[Math.max(last, 0)];
    // Chunks are copies, so the window is reused: the tail (< max) moves to its front.
    w.copyWithin(0, keepFrom, this.len);
    this.len -= keepFrom;
    return out;
  }
}

/*
 * Chunk buffers. Each chunk is copied out of the window into an ArrayBuffer
 * of its own, with CHUNK_ROOM around it: it can be moved to a worker without
 * a copy, sealed where it lies (the blob header before it, the tag after it),
 * and framed for the wire where it lies. Once the blob is written, the
 * uploader hands the buffer back (recycleChunkBuffer) for a later chunk:
 * fresh buffers per chunk left tens of MiB of dead buffers in malloc's arenas
 * between collections. Capacities come in classes (2^k and 1.5 * 2^k, from
 * 4 KiB) so buffers fit later chunks; at most SPARE_MAX bytes are kept, the
 * most recently returned (chunk sizes come in runs: a tree of small files,
 * then a large file), and a buffer that is not kept is freed at once
 * (discardBuffer), not left for a full collection.
 */
const SPARE_MAX = 8 * 1024 * 1024;
/** Never more spares than this, whoever asks (keepChunkSpares). */
const SPARE_CEILING = 32 * 1024 * 1024;
let spareMax = SPARE_MAX;
const spareChunks = new Map<number, ArrayBuffer[]>();
/** the same buffers, oldest first (entries no longer spare are skipped): the first to go when the pool is full */
let spareOrder: ArrayBuffer[] = [];
let spareHead = 0;
/** the same buffers: handing one back twice must not give it to two chunks */
const spareSet = new WeakSet<ArrayBuffer>();
let spareBytes = 0;

/**
 * Keep up to `bytes` of spares in this thread from now on (at most
 * SPARE_CEILING, never fewer than SPARE_MAX): a WAL push reads a whole
 * segment's chunks at once, and with 8 MiB kept each 16 MiB push found half
 * of its buffers fresh (docs/POSTGRESQL.md).
 */
export function keepChunkSpares(bytes: number): void {
  spareMax = Math.max(spareMax, Math.min(bytes, SPARE_CEILING));
}

/** The capacity class for a chunk of `n` bytes. */
function chunkClass(n: number): number {
  let c = 4096;
  while (c < n) c = c % 3 === 0 ? (c / 3) * 4 : (c / 2) * 3;
  return c;
}

function takeSpare(ab: ArrayBuffer): void {
  spareBytes -= ab.byteLength;
  spareSet.delete(ab);
}

/** A buffer for a chunk of `n` bytes: a view at CHUNK_ROOM.head into a (possibly recycled) ArrayBuffer of its own. */
export function chunkBuffer(n: number): Buffer {
  const cls = chunkClass(n);
  // A spare of this class, or of the next two (at most twice the size): chunk sizes vary, and a miss costs an allocation.
  let ab: ArrayBuffer | undefined;
  for (let c = cls, i = 0; i < 3 && !ab; i++, c = chunkClass(c + 1)) ab = spareChunks.get(c)?.pop();
  if (ab) takeSpare(ab);
  else ab = Buffer.allocUnsafeSlow(CHUNK_ROOM.head + cls + CHUNK_ROOM.tail).buffer as ArrayBuffer;
  return Buffer.from(ab, CHUNK_ROOM.head, n);
}

/** True when `b` came from chunkBuffer (and may be sealed in place by whoever owns it). */
export function isChunkBuffer(b: Uint8Array): boolean {
  const cls = b.buffer.byteLength - CHUNK_ROOM.head - CHUNK_ROOM.tail;
  return b.buffer instanceof ArrayBuffer && b.byteOffset === CHUNK_ROOM.head && b.length <= cls && chunkClass(cls) === cls;
}

/** Hand a chunk buffer (its ArrayBuffer) back once nothing refers to its bytes any more. */
export function recycleChunkBuffer(ab: ArrayBufferLike): void {
  const cls = ab.byteLength - CHUNK_ROOM.head - CHUNK_ROOM.tail;
  if (!(ab instanceof ArrayBuffer) || spareSet.has(ab) || cls <= 0 || chunkClass(cls) !== cls) return;
  if (ab.byteLength > spareMax) return discardBuffer(ab);
  // Room for it: the oldest spares go (freed now, not at a full collection).
  while (spareBytes + ab.byteLength > spareMax) {
    const old = spareOrder[spareHead++];
    if (!spareSet.has(old)) continue;
    const list = spareChunks.get(old.byteLength - CHUNK_ROOM.head - CHUNK_ROOM.tail)!;
    list.splice(list.indexOf(old), 1);
    takeSpare(old);
    discardBuffer(old);
  }
  if (spareHead > 1024 && spareHead * 2 > spareOrder.length) {
    spareOrder = spareOrder.slice(spareHead).filter((x) => spareSet.has(x));
    spareHead = 0;
  }
  spareSet.add(ab);
  let list = spareChunks.get(cls);
  if (!list) spareChunks.set(cls, (list = []));
  list.push(ab);
  spareOrder.push(ab);
  spareBytes += ab.byteLength;
}

/**
 * Read a file of `size` bytes (its lstat size) into a chunk buffer of that size, reading one byte
 * more into the buffer's tail room to see whether it grew meanwhile. Not grown: `bytes` is the
 * chunk (shorter if the file shrank). Grown: `bytes` is what was read, size + 1 bytes.
 */
function readWhole(fd: number, size: number): { bytes: Buffer; grew: boolean } {
  const b = chunkBuffer(size);
  const room = Buffer.from(b.buffer, b.byteOffset, size + 1); // CHUNK_ROOM.tail > 0
  let n = 0;
  for (let r; n < room.length && (r = fs.readSync(fd, room, n, room.length - n, null)) > 0; ) n += r;
  return n > size ? { bytes: room, grew: true } : { bytes: b.subarray(0, n), grew: false };
}

function ownCopy(view: Uint8Array): Buffer {
  const b = chunkBuffer(view.length);
  b.set(view);
  return b;
}

/** Read size for files: one reused buffer (no garbage per read); no larger than a push piece, or the window would grow for it. */
const FILE_READ_SIZE = PUSH_PIECE;

/** Read buffers shared by sequential chunkFile calls (one per concurrent reader). */
const readBuffers: Buffer[] = [];

/**
 * Chunk a file, reading it through a reused buffer: a fresh 4 MiB buffer per
 * file made small-file backups spend their time in the garbage collector.
 * `sizeHint` (the lstat size) lets tiny files skip the big buffer entirely.
 * A descriptor (number) is read and left open, as StreamChunker.file does.
 */
export async function* chunkFile(file: string | Buffer | number, params: Chunking, sizeHint = FILE_READ_SIZE): AsyncGenerator<Buffer> {
  const fh = typeof file === 'number' ? fdReader(file) : await fs.promises.open(file, 'r');
  const small = sizeHint < 64 * 1024;
  const buf = small ? Buffer.allocUnsafe(sizeHint + 1) : (readBuffers.pop() ?? Buffer.allocUnsafeSlow(FILE_READ_SIZE));
  const chunker = new StreamChunker(params);
  try {
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      yield* chunker.push(buf.subarray(0, bytesRead));
    }
    yield* chunker.finish();
  } finally {
    chunker.dispose();
    if (!small && readBuffers.length < 4) readBuffers.push(buf);
    await fh.close();
  }
}

/** The part of a FileHandle chunkFile uses, over a descriptor it does not own (close leaves it open). */
function fdReader(fd: number): { read(buffer: Buffer, offset: number, length: number, position: null): Promise<{ bytesRead: number }>; close(): Promise<void> } {
  return {
    read: (buffer, offset, length) => new Promise((resolve, reject) => fs.read(fd, buffer, offset, length, null, (e, bytesRead) => (e ? reject(e) : resolve({ bytesRead })))),
    close: async () => undefined,
  };
}

/** Chunk a whole async stream of buffers (a file, stdin). */
export async function* chunkStream(source: AsyncIterable<Uint8Array>, params: Chunking): AsyncGenerator<Buffer> {
  const chunker = new StreamChunker(params);
  try {
    for await (const data of source) yield* chunker.push(data);
    yield* chunker.finish();
  } finally {
    chunker.dispose();
  }
}
