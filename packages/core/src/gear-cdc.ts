import type { ChunkerParams } from './chunker-params.js';

/*
 * FastCDC cut points from a gear table of the repository's own (keyed
 * repositories, see chunker.ts). With fastcdc-wasm's public table anyone can
 * compute where a known file is cut, and the stored blob lengths (zstd's
 * output is deterministic too) then confirm that the file is in a repository:
 * the server, which sees those lengths, could test guesses. Derived from the
 * master key (keys/subkeys.ts), the table makes the cut points, and so the
 * lengths, unpredictable without the key.
 *
 * FastCDC with normalized chunking, as fastcdc-wasm runs it: no cut in the
 * first `min` bytes (they are not even hashed), a harder mask (one bit more
 * than log2(avg)) up to `avg`, an easier one (one bit fewer) after it, a cut
 * at `max` at the latest. The fingerprint is 32-bit: `h = (h << 1) + gear[b]`
 * remembers the last 32 bytes, and the masks test its high bits. Each cut
 * depends only on the bytes since the previous one, which StreamChunker
 * relies on. ~900 MB/s for one scan here, ~700 MB/s through StreamChunker's
 * window, against ~1.1 GB/s for fastcdc-wasm (bench micro rows).
 */

/** The masks for an average of `avg`: `bits` high bits of a 32-bit fingerprint. */
function highBits(bits: number): number {
  return (((1 << bits) - 1) << (32 - bits)) | 0;
}

/** The fingerprint where the last scan stopped (the easy phase goes on from the hard one's). */
let carried = 0;

/**
 * Roll the fingerprint `h` over `d[from, to)`; the index after the first byte
 * where `h & mask` is zero, or -1. Unrolled by four: ~1.6x the plain loop here.
 */
function scan(d: Uint8Array, from: number, to: number, gear: Int32Array, mask: number, h: number): number {
  let i = from;
  for (const last = to - 3; i < last; i += 4) {
    h = ((h << 1) + gear[d[i]]) | 0;
    if ((h & mask) === 0) return i + 1;
    h = ((h << 1) + gear[d[i + 1]]) | 0;
    if ((h & mask) === 0) return i + 2;
    h = ((h << 1) + gear[d[i + 2]]) | 0;
    if ((h & mask) === 0) return i + 3;
    h = ((h << 1) + gear[d[i + 3]]) | 0;
    if ((h & mask) === 0) return i + 4;
  }
  for (; i < to; i++) {
    h = ((h << 1) + gear[d[i]]) | 0;
    if ((h & mask) === 0) return i + 1;
  }
  carried = h;
  return -1;
}

/**
 * Chunk boundaries of `data[0, len)`: [0, cut1, ..., len], as fastcdc-wasm's
 * get_chunks gives them (the last chunk ends at `len`, cut there or not).
 */
export function gearBounds(data: Uint8Array, len: number, p: ChunkerParams, gear: Int32Array): number[] {
  const { min, avg, max } = p;
  const bits = Math.round(Math.log2(avg));
  const hard = highBits(Math.min(31, bits + 1));
  const easy = highBits(Math.max(1, bits - 1));
  const out = [0];
  for (let start = 0; start < len; ) {
    const rest = len - start;
    if (rest <= min) {
      out.push(len);
      break;
    }
    const center = start + Math.min(rest, avg);
    const end = start + Math.min(rest, max);
    let cut = scan(data, start + min, center, gear, hard, 0);
    if (cut < 0) cut = scan(data, center, end, gear, easy, carried);
    if (cut < 0) cut = end;
    out.push(cut);
    start = cut;
  }
  return out;
}
