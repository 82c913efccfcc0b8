import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fsyncDir } from '../fsutil.js';
import { storageHash } from '../ids.js';
import { claimSpace, diskFull, isNoSpace } from '../storage-space.js';
import { writeTrailerEntry, PACK_FOOTER, FOOTER_SIZE, PACK_HEADER, PACK_HEADER_SIZE, PACK_MAGIC, PACK_VERSION, PackEntry, TRAILER_ENTRY_SIZE, TRAILER_MAGIC } from './format.js';

export function packPath(packsDir: string, packId: string): string {
  return path.join(packsDir, packId.slice(0, 2), `${packId}.pack`);
}

export function encodeTrailer(entries: PackEntry[]): Buffer {
  const t = Buffer.alloc(entries.length * TRAILER_ENTRY_SIZE);
  entries.forEach((e, i) => writeTrailerEntry(t, i * TRAILER_ENTRY_SIZE, e));
  const foot = Buffer.alloc(FOOTER_SIZE);
  foot.writeUInt32BE(entries.length, PACK_FOOTER.count);
  storageHash(t).copy(foot, PACK_FOOTER.checksum);
  TRAILER_MAGIC.copy(foot, PACK_FOOTER.magic);
  return Buffer.concat([t, foot]);
}

/** A pack complete in its temporary file (PackWriter.seal), not yet where readers find it. */
export interface SealedPack {
  id: string;
  size: number;
  entries: PackEntry[];
  tmpFile: string;
}

/** A sealed pack renamed into packs/xx/ and the directory fsynced (the local directory's publish). */
export function movePackIntoPlace(p: SealedPack, packsDir: string): void {
  const dest = packPath(packsDir, p.id);
  fs.mkdirSync(path.dirname(dest), { recursive: true });
  fs.renameSync(p.tmpFile, dest);
  fsyncDir(path.dirname(dest));
}

/**
 * Blobs are gathered into one buffer of this size and written with one call:
 * a pack of small blobs took one `writeSync` per blob (a syscall and its
 * JavaScript around it, ~15% of keepd's CPU receiving small files).
 */
export const PACK_APPEND_BYTES = 1024 * 1024;

/**
 * Appends blobs to one pack under tmp/. `finish()` writes the trailer, fsyncs,
 * and moves the pack into place; the caller indexes the returned entries only
 * after that, so the index never names bytes that a crash could lose. Blobs
 * are appended in writes of up to PACK_APPEND_BYTES (nothing in an unfinished
 * pack is durable or readable before `finish()` anyway).
 */
export class PackWriter {
  readonly id = crypto.randomBytes(16).toString('hex');
  private readonly tmpPath: string;
  private fd: number;
  /** bytes in the file */
  private written = 0;
  /** blobs gathered after `written`, not yet in the file */
  private readonly gather = Buffer.allocUnsafe(PACK_APPEND_BYTES);
  private gathered = 0;
  /** entries[0, inFile) are in the file; the rest are gathered */
  private inFile = 0;
  readonly entries: PackEntry[] = [];

  constructor(
    tmpDir: string,
    private readonly packsDir: string,
  ) {
    this.tmpPath = path.join(tmpDir, `${this.id}.pack.tmp`);
    this.fd = fs.openSync(this.tmpPath, 'wx');
    const h = Buffer.alloc(PACK_HEADER_SIZE);
    PACK_MAGIC.copy(h, PACK_HEADER.magic);
    h.writeUInt32BE(PACK_VERSION, PACK_HEADER.version);
    try {
      this.write(h);
    } catch (e) {
      this.abandon();
      throw e;
    }
  }

  /** The pack's size so far (gathered blobs included). */
  get bytes(): number {
    return this.written + this.gathered;
  }

  get count(): number {
    return this.entries.length;
  }

  /**
   * A write that fails part-way (ENOSPC) is cut off again: the file ends
   * where the last whole write ends, so a trailer written later (once space
   * is back) describes every byte before it.
   */
  private write(b: Buffer): void {
    let done = 0;
    try {
      while (done < b.length) done += fs.writeSync(this.fd, b, done, b.length - done, this.written + done);
    } catch (e) {
      if (done > 0 || isNoSpace(e)) fs.ftruncateSync(this.fd, this.written);
      throw isNoSpace(e) ? diskFull(path.dirname(this.packsDir)) : e;
    }
    this.written += b.length;
  }

  /**
   * Write the gathered blobs. When that fails, they are dropped from the pack
   * (`entries` ends at the last blob in the file) and the error is thrown:
   * the caller forgets them (BlobWriter: they are not stored after all).
   */
  private flushGathered(): void {
    if (this.gathered === 0) return;
    try {
      this.write(this.gather.subarray(0, this.gathered));
    } catch (e) {
      this.entries.length = this.inFile;
      throw e;
    } finally {
      this.gathered = 0;
    }
    this.inFile = this.entries.length;
  }

  /** Append one stored blob; `hash` is its storage hash when the caller already verified it. */
  add(id: Buffer, type: number, stored: Buffer, hash?: Buffer): PackEntry {
    const entry: PackEntry = { id: Buffer.from(id), type, offset: this.bytes, length: stored.length, hash: hash ? Buffer.from(hash) : storageHash(stored) };
    // The last bytes of the disk are left to the index (margins.ts): a blob is refused before it is written.
    claimSpace(path.dirname(this.packsDir), stored.length);
    if (this.gathered + stored.length > PACK_APPEND_BYTES) this.flushGathered();
    if (stored.length >= PACK_APPEND_BYTES) {
      this.write(stored);
      this.entries.push(entry);
      this.inFile = this.entries.length;
      return entry;
    }
    this.gathered += stored.copy(this.gather, this.gathered);
    this.entries.push(entry);
    return entry;
  }

  /**
   * Write the trailer, fsync, rename into packs/, fsync the directory. A
   * failure before the rename (a full disk) discards the pack: no file in
   * packs/ ever lacks its trailer.
   */
  finish(): { id: string; size: number; entries: PackEntry[] } {
    const sealed = this.seal();
    try {
      movePackIntoPlace(sealed, this.packsDir);
    } catch (e) {
      this.abandon();
      throw isNoSpace(e) ? diskFull(path.dirname(this.packsDir)) : e;
    }
    return { id: this.id, size: this.written, entries: this.entries };
  }

  /**
   * Write the trailer and fsync: the pack is complete under tmp/ and ready
   * to be published (RepoStorage.publishPack: renamed into packs/, or put in
   * a bucket). A failure discards it.
   */
  seal(): SealedPack {
    return this.orDiscard(() => {
      this.writeTrailer();
      fs.fsyncSync(this.fd);
      return this.closeSealed();
    });
  }

  /**
   * seal(), with the fsync on the thread pool while `alongside` runs (given
   * the pack's id and final size): BlobWriter journals the pack for its index
   * segment meanwhile, an LMDB commit that waited for the fsync before. A
   * failure of the pack's own writes discards it; `alongside` reports its own.
   */
  async sealAlongside(alongside: (p: { id: string; size: number }) => Promise<void>): Promise<SealedPack> {
    const fd = this.orDiscard(() => (this.writeTrailer(), this.fd));
    const fsynced = new Promise<void>((resolve, reject) => fs.fsync(fd, (e) => (e ? reject(e) : resolve())));
    const [synced] = await Promise.allSettled([fsynced, alongside({ id: this.id, size: this.written })]);
    return this.orDiscard(() => {
      if (synced.status === 'rejected') throw synced.reason;
      return this.closeSealed();
    });
  }

  private writeTrailer(): void {
    this.flushGathered();
    this.write(encodeTrailer(this.entries));
  }

  private closeSealed(): SealedPack {
    fs.closeSync(this.fd);
    this.fd = -1;
    return { id: this.id, size: this.written, entries: this.entries, tmpFile: this.tmpPath };
  }

  /** A step of sealing: a failure discards the pack (a full disk named as such). */
  private orDiscard<T>(step: () => T): T {
    try {
      return step();
    } catch (e) {
      this.abandon();
      throw isNoSpace(e) ? diskFull(path.dirname(this.packsDir)) : e;
    }
  }

  /** Drop an unfinished pack (nothing in it was ever acknowledged). */
  abandon(): void {
    if (this.fd >= 0) fs.closeSync(this.fd);
    this.fd = -1;
    this.gathered = 0;
    fs.rmSync(this.tmpPath, { force: true });
  }
}
