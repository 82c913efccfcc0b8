// The binding below zstd-napi's Compressor: it compresses into a buffer we give it (Compressor allocates one per call, then copies the result out of it).
import zstd from 'zstd-napi/binding.js';
import { KeepError } from './errors.js';
import { discardBuffer } from './parallel/discard.js';

/** User-facing compression levels and the zstd levels they stand for. */
export const COMPRESSION_LEVELS = { none: 0, low: 1, medium: 3, high: 9 } as const;
export type Compression = keyof typeof COMPRESSION_LEVELS;

export function parseCompression(value: string): Compression {
  if (value in COMPRESSION_LEVELS) return value as Compression;
  throw new KeepError('INVALID_ARGUMENT', `--compression must be none, low, medium or high, not ${value}`);
}

/** First byte of every sealed plaintext: how the rest is encoded. Inside the encryption, so it leaks nothing. */
export const enum Codec {
  Raw = 0,
  Zstd = 1,
}

/** Size of each probe of the incompressibility test. */
const SAMPLE = 16 * 1024;
/** A blob is kept compressed only when it saves at least this fraction. */
const MIN_SAVING = 0.03;

const contexts = new Map<number, InstanceType<typeof zstd.CCtx>>();
function context(level: number): InstanceType<typeof zstd.CCtx> {
  let c = contexts.get(level);
  if (!c) {
    c = new zstd.CCtx();
    c.setParameter(zstd.CParameter.compressionLevel, level);
    contexts.set(level, c);
  }
  return c;
}

/**
 * Output buffer of this thread's compressions, reused: a fresh one per chunk
 * (and zstd-napi's trimmed copy of it) left MiBs of dead buffers per MiB
 * sealed, which malloc keeps in its arenas. Kept up to SCRATCH_MAX (the
 * bound of a 4 MiB chunk, the largest default max any repository has had);
 * a larger blob gets one of its own.
 */
const SCRATCH_MAX = 4 * 1024 * 1024 + 64 * 1024;
let scratch: Buffer | undefined;

/** `data` compressed at `level`, in the scratch buffer: valid until this thread's next compression. */
function compressScratch(data: Uint8Array, level: number): Uint8Array {
  const bound = zstd.compressBound(data.length);
  let out = scratch;
  if (!out || out.length < bound) {
    // Doubling: a thread that compresses small trees first does not reallocate for every larger chunk after them.
    out = Buffer.allocUnsafeSlow(bound > SCRATCH_MAX ? bound : Math.min(Math.max(bound, 2 * (scratch?.length ?? 0)), SCRATCH_MAX));
    if (bound <= SCRATCH_MAX) {
      if (scratch) discardBuffer(scratch.buffer as ArrayBuffer);
      scratch = out;
    }
  }
  return out.subarray(0, context(level).compress2(out, data));
}

/**
 * Free this thread's compression buffer (it is made again when needed): for
 * a thread done with compressing chunks (the seal pool's caller, once its
 * workers seal them) that still seals small tree nodes.
 */
export function releaseCompressScratch(): void {
  if (scratch) discardBuffer(scratch.buffer as ArrayBuffer);
  scratch = undefined;
}

/**
 * Compress `data` at `level`, or return it raw when compression would not pay.
 * Incompressible data (already compressed media, encrypted files) is detected
 * by compressing 16 KiB samples at zstd's fastest level first, so random data
 * costs three samples, not a full pass. The samples come from the start, the
 * middle and the end: a chunk of a disk image or a tar often starts in
 * compressed data and continues in text, and probing the start alone stored
 * such chunks raw (1.6 MB more on the bench tree's 105 MB).
 *
 * Compressed `bytes` lie in a scratch buffer that the thread's next call
 * overwrites: use them (encrypt them) before compressing anything else.
 */
export function compressBlob(data: Uint8Array, compression: Compression): { codec: Codec; bytes: Uint8Array } {
  const level = COMPRESSION_LEVELS[compression];
  if (level === 0 || data.length < 64) return { codec: Codec.Raw, bytes: data };
  if (data.length > SAMPLE * 4 && !probesCompress(data)) return { codec: Codec.Raw, bytes: data };
  const out = compressScratch(data, level);
  if (out.length > data.length * (1 - MIN_SAVING)) return { codec: Codec.Raw, bytes: data };
  return { codec: Codec.Zstd, bytes: out };
}

function probesCompress(data: Uint8Array): boolean {
  for (const at of [0, (data.length - SAMPLE) >>> 1, data.length - SAMPLE]) {
    const sample = data.subarray(at, at + SAMPLE);
    if (compressScratch(sample, 1).length <= sample.length * (1 - MIN_SAVING)) return true;
  }
  return false;
}

let dctx: InstanceType<typeof zstd.DCtx> | undefined;

/**
 * Largest plaintext a blob may decompress to unless the caller names a smaller
 * bound: the largest max chunk size a repository may have (chunker.ts).
 */
export const MAX_PLAINTEXT = 64 * 1024 * 1024;

/**
 * Decode a sealed plaintext's bytes; a zstd frame goes into a buffer from
 * `out` (a caller that reuses that buffer allocates nothing per blob). At most
 * `limit` bytes come out, and never is more allocated: a frame declaring more
 * is refused from its header, one declaring nothing (or less than it holds) is
 * decoded into `limit` bytes and refused when they do not suffice. So a zstd
 * bomb from a key holder (33 KB declaring or holding gigabytes) costs at most
 * `limit` bytes and the time to fill them. Raw bytes come back as they are.
 */
export function decompressBlobInto(codec: number, bytes: Uint8Array, out: (n: number) => Buffer, limit = MAX_PLAINTEXT): Buffer {
  if (codec === Codec.Raw) return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (codec !== Codec.Zstd) throw new KeepError('CORRUPT', `unknown codec ${codec}`);
  let size: number | null;
  try {
    size = zstd.getFrameContentSize(bytes);
  } catch (e) {
    throw new KeepError('CORRUPT', `zstd frame does not decompress: ${(e as Error).message}`);
  }
  if (size !== null && size > limit) throw overLimit(`declares ${size} bytes`, limit);
  const cap = size ?? limit;
  const dst = out(cap).subarray(0, cap);
  let n: number;
  try {
    dctx ??= new zstd.DCtx();
    n = dctx.decompress(dst, bytes);
  } catch (e) {
    const msg = (e as Error).message;
    if (/too small/i.test(msg)) throw overLimit(size === null ? 'holds more' : `holds more than the ${size} bytes it declares`, limit);
    throw new KeepError('CORRUPT', `zstd frame does not decompress: ${msg}`);
  }
  if (size !== null && n !== size) throw new KeepError('CORRUPT', `zstd frame does not decompress: ${n} bytes, its header says ${size}`);
  return dst.subarray(0, n);
}

function overLimit(what: string, limit: number): KeepError {
  return new KeepError('CORRUPT', `zstd frame ${what}, over the ${limit}-byte bound of this blob (a decompression bomb, or damage): refused`);
}

/** decompressBlobInto a buffer of its own. */
export function decompressBlob(codec: number, bytes: Uint8Array, limit = MAX_PLAINTEXT): Buffer {
  return decompressBlobInto(codec, bytes, (n) => Buffer.allocUnsafeSlow(n), limit);
}
