import crypto from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { chunkId, deriveKeys, HEADER_SIZE, newMasterKey, openBlob, parseBlob, sealData, SealPool, TAG_SIZE, toHex } from '@keep/core';
import { BlobType, compressibleBytes, expectKeepError, seededBytes } from './util.js';

describe('SealPool', () => {
  const master = newMasterKey();
  const keys = deriveKeys(master);
  const pool = new SealPool(master, 2);
  const salt = crypto.randomBytes(16);
  afterAll(() => pool.close());

  it('has the workers it was asked for', () => {
    expect(pool.size).toBe(2);
  });

  it('seals in the workers; the main thread and the pool both open the result', async () => {
    const inputs = [
      Buffer.alloc(0),
      compressibleBytes(200_000),
      seededBytes('pool-random', 300_000),
      // A view into a larger buffer: only its own bytes may be sealed.
      seededBytes('pool-view', 10_000).subarray(1234, 5678),
      ...Array.from({ length: 20 }, (_, i) => (i % 2 ? compressibleBytes(1000 + i * 997) : seededBytes(`pool-${i}`, 1000 + i * 4099))),
    ];
    const ids = inputs.map((p) => chunkId(keys, p));
    // All in flight at once, spread over both workers.
    const sealed = await Promise.all(inputs.map((p, i) => pool.seal(salt, ids[i], p, 'medium')));
    for (const [i, stored] of sealed.entries()) {
      const p = parseBlob(stored);
      expect(p.type).toBe(BlobType.Data);
      expect(p.salt.equals(salt)).toBe(true);
      expect(openBlob(keys, ids[i], stored).plaintext.equals(inputs[i])).toBe(true);
    }
    // Random data stays raw, compressible data shrinks.
    expect(sealed[2].length).toBe(300_000 + HEADER_SIZE + 1 + TAG_SIZE);
    expect(sealed[1].length).toBeLessThan(20_000);
    // The caller's buffers were copied, not transferred away.
    expect(inputs[1].length).toBe(200_000);
    expect(inputs[3].length).toBe(5678 - 1234);

    const opened = await Promise.all(sealed.map((s, i) => pool.open(ids[i], s)));
    for (const [i, o] of opened.entries()) expect(o.equals(inputs[i])).toBe(true);
    // Sealed on the main thread, opened in the pool.
    const main = sealData(keys, salt, ids[1], inputs[1], 'high');
    expect((await pool.open(ids[1], main)).equals(inputs[1])).toBe(true);
  });

  it('a pool with another master key cannot open these blobs', async () => {
    const other = new SealPool(newMasterKey(), 1);
    try {
      const plain = compressibleBytes(5000);
      const id = chunkId(keys, plain);
      const stored = await pool.seal(salt, id, plain, 'low');
      await expectKeepError(() => other.open(id, stored), 'CORRUPT');
    } finally {
      await other.close();
    }
  });

  it('worker errors surface as KeepError with the right code, and the pool keeps working', async () => {
    const plain = seededBytes('pool-errors', 4000);
    const id = chunkId(keys, plain);
    const stored = await pool.seal(salt, id, plain, 'low');

    const wrongId = chunkId(keys, Buffer.from('another chunk'));
    const e1 = await expectKeepError(() => pool.open(wrongId, stored), 'CORRUPT');
    expect(e1.message).toContain(toHex(wrongId));

    const flipped = Buffer.from(stored);
    flipped[flipped.length - 100] ^= 1;
    await expectKeepError(() => pool.open(id, flipped), 'CORRUPT');
    expect((await expectKeepError(() => pool.open(id, Buffer.alloc(10)), 'CORRUPT')).message).toMatch(/too short/);

    // A blob sealed under an id that is not its content: authenticates, then fails the id check.
    const lie = await pool.seal(salt, wrongId, plain, 'none');
    expect((await expectKeepError(() => pool.open(wrongId, lie), 'CORRUPT')).message).toMatch(/different id/);

    // Errors and successes interleaved: each promise gets its own outcome.
    const results = await Promise.allSettled([pool.open(id, stored), pool.open(wrongId, stored), pool.open(id, stored), pool.open(id, flipped)]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled', 'rejected']);
    expect((results[0] as PromiseFulfilledResult<Buffer>).value.equals(plain)).toBe(true);
    expect((results[1] as PromiseRejectedResult).reason.code).toBe('CORRUPT');
  });
});

describe('SealPool growth', () => {
  const MiB = 1 << 20;
  const master = newMasterKey();
  const keys = deriveKeys(master);
  const salt = crypto.randomBytes(16);
  const chunks = (n: number, tag: string) => Array.from({ length: n }, (_, i) => seededBytes(`${tag}-${i}`, MiB)).map((plaintext) => ({ id: chunkId(keys, plaintext), plaintext }));

  /** Past the inline budget (one worker running, idle again), then two 1 MiB jobs at once: how many workers seal them. */
  async function workersForTwoJobs(pool: SealPool): Promise<number> {
    await pool.sealMany(salt, chunks(5, 'past-inline'), 'low');
    expect(pool.started).toBe(1);
    await Promise.all([pool.sealMany(salt, chunks(2, 'a'), 'low'), pool.sealMany(salt, chunks(1, 'b'), 'low')]);
    return pool.started;
  }

  it("starts another worker once one has a job queued when asked to (the WAL archiver's pool: a segment's chunks sealed two at a time)", async () => {
    const wal = new SealPool(master, 2, MiB);
    const backup = new SealPool(master, 2);
    try {
      expect(await workersForTwoJobs(wal)).toBe(2);
      // a backup's pool waits for a 4 MiB backlog: 2 MiB queued leaves the second job to the same worker
      expect(await workersForTwoJobs(backup)).toBe(1);
    } finally {
      await Promise.all([wal.close(), backup.close()]);
    }
  });
});
