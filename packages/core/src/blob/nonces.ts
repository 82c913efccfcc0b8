import crypto from 'node:crypto';

/**
 * Random nonces for sealing, handed out from a pool filled 4 KiB at a time:
 * one randomFillSync per blob cost ~4 us, ~0.35 CPU-s over the real-data
 * bench's five backups (docs/PERFORMANCE.md). Each byte of the pool is handed
 * out once; every thread (the seal workers) has its own pool.
 */
const POOL_BYTES = 4096;
let pool = Buffer.alloc(0);
let at = 0;

/** Write `size` fresh random bytes into `out` at `offset`. */
export function fillNonce(out: Uint8Array, offset: number, size: number): void {
  if (size > POOL_BYTES) throw new RangeError(`a nonce of ${size} bytes`);
  if (at + size > pool.length) {
    pool = crypto.randomFillSync(Buffer.allocUnsafeSlow(POOL_BYTES));
    at = 0;
  }
  pool.copy(out, offset, at, at + size);
  at += size;
}
