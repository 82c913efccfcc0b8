import fs from 'node:fs';
import path from 'node:path';
import { corrupt } from '../errors.js';
import { storageHash, toHex } from '../ids.js';
import { PACK_FOOTER, readTrailerEntry, FOOTER_SIZE, PACK_HEADER, PACK_HEADER_SIZE, PACK_MAGIC, PackEntry, TRAILER_ENTRY_SIZE, TRAILER_MAGIC } from './format.js';

/**
 * Reads up to this size are positional reads on the calling thread, not the
 * FileHandle's promise: ~5 us of CPU for 2 KiB from the page cache against ~35
 * (the thread-pool round trip), per tree or small run keepd serves, as its LMDB
 * reads and pack appends already are. Larger runs (a restore's data, often cold)
 * stay on the thread pool, so several are in flight and the thread is not held.
 */
const SYNC_READ_MAX = 256 * 1024;

/** Read `length` bytes at `offset`, failing clearly when the file is shorter (a truncated pack). */
export async function readAt(file: fs.promises.FileHandle, offset: number, length: number, what: string): Promise<Buffer> {
  const b = Buffer.allocUnsafe(length);
  const small = length <= SYNC_READ_MAX;
  let done = 0;
  while (done < length) {
    const bytesRead = small ? fs.readSync(file.fd, b, done, length - done, offset + done) : (await file.read(b, done, length - done, offset + done)).bytesRead;
    if (bytesRead === 0) throw corrupt(`${what}: pack ends after ${offset + done} bytes, expected ${offset + length} (truncated)`);
    done += bytesRead;
  }
  return b;
}

/** Bytes `length` at `offset` of one pack, failing CORRUPT when the pack is shorter. */
export type PackRead = (offset: number, length: number) => Promise<Buffer>;

/** Parse a pack's trailer: the list of blobs it holds. Throws CORRUPT on any inconsistency. */
export async function readTrailer(packFile: string): Promise<PackEntry[]> {
  const f = await fs.promises.open(packFile, 'r');
  try {
    const { size } = await f.stat();
    return await parseTrailer(size, (offset, length) => readAt(f, offset, length, packFile), packFile);
  } finally {
    await f.close();
  }
}

/** readTrailer of a pack of `size` bytes read through `read` (a file, or ranged gets from an object store). */
export async function parseTrailer(size: number, read: PackRead, packFile: string): Promise<PackEntry[]> {
  if (size < PACK_HEADER_SIZE + FOOTER_SIZE) throw corrupt(`pack ${packFile} is truncated (${size} bytes)`);
  const head = await read(0, PACK_HEADER_SIZE);
  if (!head.subarray(PACK_HEADER.magic, PACK_HEADER.magic + PACK_MAGIC.length).equals(PACK_MAGIC)) throw corrupt(`${packFile} is not a Keep pack (bad magic)`);
  const foot = await read(size - FOOTER_SIZE, FOOTER_SIZE);
  if (!foot.subarray(PACK_FOOTER.magic).equals(TRAILER_MAGIC)) throw corrupt(`pack ${packFile} has no trailer (truncated or unfinished)`);
  const n = foot.readUInt32BE(PACK_FOOTER.count);
  const tlen = n * TRAILER_ENTRY_SIZE;
  const tstart = size - FOOTER_SIZE - tlen;
  if (tstart < PACK_HEADER_SIZE) throw corrupt(`pack ${packFile} trailer claims ${n} blobs, more than fit`);
  const t = await read(tstart, tlen);
  if (!storageHash(t).equals(foot.subarray(PACK_FOOTER.checksum, PACK_FOOTER.magic))) throw corrupt(`pack ${packFile} trailer is damaged (checksum mismatch)`);
  const entries: PackEntry[] = [];
  for (let i = 0; i < n; i++) {
    const e = readTrailerEntry(t, i * TRAILER_ENTRY_SIZE);
    if (e.offset < PACK_HEADER_SIZE || e.offset + e.length > tstart) throw corrupt(`pack ${packFile} trailer entry ${i} points outside the pack`);
    entries.push(e);
  }
  return entries;
}

/**
 * Open pack files kept for reading, least recently used closed first: a
 * restore reads many blobs from few packs, and an open() per blob was most of
 * its per-file cost. Packs never change once written, so a handle stays valid
 * (even after a prune unlinks the file, it reads the same bytes).
 */
export class PackHandles {
  private readonly open = new Map<string, Promise<fs.promises.FileHandle>>();

  constructor(private readonly capacity = 64) {}

  get(file: string): Promise<fs.promises.FileHandle> {
    let h = this.open.get(file);
    if (h) {
      this.open.delete(file); // re-insert: most recently used last
      this.open.set(file, h);
      return h;
    }
    h = fs.promises.open(file, 'r');
    h.catch(() => this.open.delete(file));
    this.open.set(file, h);
    if (this.open.size > this.capacity) {
      const [oldest, fh] = this.open.entries().next().value!;
      this.open.delete(oldest);
      // Closed after in-flight reads on it had their turn.
      void fh.then((x) => setTimeout(() => void x.close().catch(() => undefined), 1000)).catch(() => undefined);
    }
    return h;
  }

  async close(): Promise<void> {
    const all = [...this.open.values()];
    this.open.clear();
    await Promise.all(all.map((h) => h.then((x) => x.close()).catch(() => undefined)));
  }
}

/** A pack's name without the server's directories: blob errors travel to remote clients. */
const packName = (file: string) => path.basename(file, '.pack');

/** Read one blob and prove its bytes are the ones that were stored; with the whole storage hash the read proved. */
export async function readStoredAt(packFile: string, blob: BlobSpan, handles?: PackHandles): Promise<StoredBytes> {
  const [got] = await readBlobRun(packFile, [blob], handles);
  if (got instanceof Error) throw got;
  return got;
}

/**
 * The bytes' whole storage hash when it begins with `expected` (the whole hash,
 * or the prefix the index keeps); undefined when the bytes are damaged.
 */
export function provenHash(bytes: Uint8Array, expected: Buffer): Buffer | undefined {
  const h = storageHash(bytes);
  return expected.length > 0 && expected.length <= h.length && h.subarray(0, expected.length).equals(expected) ? h : undefined;
}

/** Where one blob of a run lies in its pack, and the storage hash (or its prefix) it must have. */
export interface BlobSpan {
  id: Buffer;
  offset: number;
  length: number;
  hash: Buffer;
}

/** A blob's bytes as read and proven, with its whole storage hash. */
export interface StoredBytes {
  bytes: Buffer;
  hash: Buffer;
}

/**
 * Read blobs that lie close together in one pack (ascending, not
 * overlapping) with one read, and prove each. A blob whose bytes do not match
 * its hash comes back as the CORRUPT error readStoredAt would throw, in its
 * place, so the caller can still serve the ones before it. The returned
 * buffers are views into one read buffer. Without `handles` the pack is
 * opened and closed here.
 */
export async function readBlobRun(packFile: string, blobs: BlobSpan[], handles?: PackHandles): Promise<(StoredBytes | Error)[]> {
  if (blobs.length === 0) return [];
  let f: fs.promises.FileHandle;
  try {
    f = handles ? await handles.get(packFile) : await fs.promises.open(packFile, 'r');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw corrupt(`blob ${toHex(blobs[0].id)}: its pack ${packName(packFile)} is missing`);
    throw e;
  }
  try {
    return await proveBlobRun(packName(packFile), blobs, (offset, length) => readAt(f, offset, length, `blob ${toHex(blobs[0].id)}`));
  } finally {
    if (!handles) await f.close();
  }
}

/** readBlobRun's one read and the proofs, on bytes `read` fetches (a file, or a ranged get). */
export async function proveBlobRun(pack: string, blobs: BlobSpan[], read: PackRead): Promise<(StoredBytes | Error)[]> {
  if (blobs.length === 0) return [];
  const start = blobs[0].offset;
  const last = blobs[blobs.length - 1];
  const b = await read(start, last.offset + last.length - start);
  return blobs.map((x) => {
    const v = b.subarray(x.offset - start, x.offset - start + x.length);
    const hash = provenHash(v, x.hash);
    return hash ? { bytes: v, hash } : corrupt(`blob ${toHex(x.id)} in pack ${pack} is damaged (storage hash mismatch)`);
  });
}
