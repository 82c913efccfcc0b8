import crypto from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import { BlobType as BlobTypeEnum, chunkId, deriveKeys, Id, KeepError, KeepErrorCode, sealData, TreeEntry } from '@keep/core';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** fastcdc-wasm is a dependency of @keep/core only; load it from there for reference chunking. */
export const { get_chunks } = createRequire(path.join(ROOT, 'packages/core/package.json'))('fastcdc-wasm') as {
  get_chunks(bytes: Uint8Array, min: number, avg: number, max: number): Uint32Array;
};

/** BlobType is a const enum (erased at runtime); its values as typed constants. */
export const BlobType = { Data: 0 as BlobTypeEnum.Data, Tree: 1 as BlobTypeEnum.Tree } as const;

/** Deterministic pseudo-random bytes: AES-256-CTR keystream under a key derived from `seed`. */
export function seededBytes(seed: string, n: number): Buffer {
  const key = crypto.createHash('sha256').update(seed).digest();
  const c = crypto.createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
  return Buffer.concat([c.update(Buffer.alloc(n)), c.final()]);
}

/** Highly compressible text-like bytes. */
export function compressibleBytes(n: number): Buffer {
  const line = Buffer.from('2026-01-01T00:00:00Z INFO keep backup: chunk stored, dedup hit, nothing to see here\n');
  const b = Buffer.alloc(n);
  for (let o = 0; o < n; o += line.length) line.copy(b, o);
  return b;
}

/** A temp dir removed by the returned cleanup. */
export function tempDir(prefix: string): { dir: string; cleanup: () => void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `keep-core-${prefix}-`));
  return { dir, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

/** Run `fn` and assert it throws (or rejects with) a KeepError with `code`; returns the error for further checks. */
export async function expectKeepError(fn: () => unknown, code: KeepErrorCode): Promise<KeepError> {
  let caught: unknown;
  try {
    await fn();
  } catch (e) {
    caught = e;
  }
  expect(caught, `expected a KeepError ${code}, nothing was thrown`).toBeDefined();
  expect(caught).toBeInstanceOf(KeepError);
  expect((caught as KeepError).code, (caught as Error).message).toBe(code);
  return caught as KeepError;
}

/** Flip every bit of one byte of a file in place (the end-to-end tests' helper). */
export { flipByte as flipByteInFile } from '../helpers.js';

/** A tree entry's metadata (all but its chunks or subtree): fixed times, owner and inode. */
export function entryMeta(name: string, type: TreeEntry['type'], size = 0): Omit<TreeEntry, 'chunks' | 'subtree'> {
  return { name: Buffer.from(name), type, mode: 0o644, uid: 0, gid: 0, mtime: [1700000000, 0], ctime: [1700000000, 0], ino: 1, dev: 1, nlink: 1, size };
}

/** A data blob of `size` bytes seeded by `seed`, sealed: its id and stored bytes. */
export function seededDataBlob(keys: ReturnType<typeof deriveKeys>, salt: Buffer, seed: string, size: number): { id: Id; stored: Buffer } {
  const plain = seededBytes(seed, size);
  const id = chunkId(keys, plain);
  return { id, stored: sealData(keys, salt, id, plain, 'low') };
}
