import { decompress as zstdDecompress } from 'zstd-napi';
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
 * decompressBlob into a buffer from `out` (called with the plaintext's size,
 * which a zstd frame of ours records): a caller that reuses that buffer
 * allocates nothing per blob. Raw bytes come back as they are. A frame that
 * records no size, or claims more than MAX_PLAINTEXT, goes through
 * decompressBlob.
 */
export function decompressBlobInto(codec: number, bytes: Uint8Array, out: (n: number) => Buffer): Buffer {
  if (codec !== Codec.Zstd) return decompressBlob(codec, bytes);
  let size: number | null;
  try {
    size = zstd.getFrameContentSize(bytes);
  } catch (e) {
    throw new KeepError('CORRUPT', `zstd frame does not decompress: ${(e as Error).message}`);
  }
  if (size === null || size > MAX_PLAINTEXT) return decompressBlob(codec, bytes);
  const dst = out(size).subarray(0, size);
  try {
    dctx ??= new zstd.DCtx();
    if (dctx.decompress(dst, bytes) !== size) throw new Error('size differs from the frame header');
  } catch (e) {
    throw new KeepError('CORRUPT', `zstd frame does not decompress: ${(e as Error).message}`);
  }
  return dst;
}

/** Largest plaintext decompressBlobInto decodes into the caller's buffer (the largest chunk a repository may use). */
const MAX_PLAINTEXT = 64 * 1024 * 1024;

export function decompressBlob(codec: number, bytes: Uint8Array): Buffer {
  switch (codec) {
    case Codec.Raw:
      return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    case Codec.Zstd:
      try {
        return zstdDecompress(bytes);
      } catch (e) {
        throw new KeepError('CORRUPT', `zstd frame does not decompress: ${(e as Error).message}`);
      }
    default:
      throw new KeepError('CORRUPT', `unknown codec ${codec}`);
  }
}
