import { Compressor, decompress as zstdDecompress } from 'zstd-napi';
import { KeepError } from './errors.js';

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

const compressors = new Map<number, Compressor>();
function compressor(level: number): Compressor {
  let c = compressors.get(level);
  if (!c) {
    c = new Compressor();
    c.setParameters({ compressionLevel: level });
    compressors.set(level, c);
  }
  return c;
}

/**
 * Compress `data` at `level`, or return it raw when compression would not pay.
 * Incompressible data (already compressed media, encrypted files) is detected
 * by compressing 16 KiB samples at zstd's fastest level first, so random data
 * costs three samples, not a full pass. The samples come from the start, the
 * middle and the end: a chunk of a disk image or a tar often starts in
 * compressed data and continues in text, and probing the start alone stored
 * such chunks raw (1.6 MB more on the bench tree's 105 MB).
 */
export function compressBlob(data: Uint8Array, compression: Compression): { codec: Codec; bytes: Uint8Array } {
  const level = COMPRESSION_LEVELS[compression];
  if (level === 0 || data.length < 64) return { codec: Codec.Raw, bytes: data };
  if (data.length > SAMPLE * 4 && !probesCompress(data)) return { codec: Codec.Raw, bytes: data };
  const out = compressor(level).compress(data);
  if (out.length > data.length * (1 - MIN_SAVING)) return { codec: Codec.Raw, bytes: data };
  return { codec: Codec.Zstd, bytes: out };
}

function probesCompress(data: Uint8Array): boolean {
  for (const at of [0, (data.length - SAMPLE) >>> 1, data.length - SAMPLE]) {
    const sample = data.subarray(at, at + SAMPLE);
    if (compressor(1).compress(sample).length <= sample.length * (1 - MIN_SAVING)) return true;
  }
  return false;
}

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
