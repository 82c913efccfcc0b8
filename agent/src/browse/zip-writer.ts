import { once } from 'node:events';
import zlib from 'node:zlib';
import { KeepError } from '@keep/core';
import type { ArchiveEntry, ArchiveWriter } from './archive-entry.js';
import type { ByteSink } from './byte-sink.js';

/**
 * A zip stream (APPNOTE 6.3), written front to back: each file is deflated
 * as it is read, its CRC and sizes follow it in a data descriptor, and the
 * central directory comes last. Entries are marked as made on Unix, so
 * unzip restores modes and symlinks (a symlink's content is its target);
 * mtimes go in the extended-timestamp field (whole seconds, zip has no
 * finer). Zip64 fields are used where sizes, offsets or the entry count
 * outgrow 32 (16) bits. Zip has no hardlinks: each name gets the content.
 */
const LOCAL = 0x04034b50;
const DESCRIPTOR = 0x08074b50;
const CENTRAL = 0x02014b50;
const END = 0x06054b50;
const END64 = 0x06064b50;
const LOCATOR64 = 0x07064b50;
/** sizes at or above this take zip64 fields (deflate may grow incompressible data a little) */
const ZIP64_SIZE = 0xffff0000;
const MAX32 = 0xffffffff;
const S_IF = { file: 0o100000, dir: 0o040000, symlink: 0o120000 } as const;

interface Written {
  name: Buffer;
  flags: number;
  method: number;
  dos: number;
  crc: number;
  csize: number;
  usize: number;
  offset: number;
  external: number;
  mtime: number;
}

export class ZipWriter implements ArchiveWriter {
  readonly hardlinks = false;
  private offset = 0;
  private readonly written: Written[] = [];

  constructor(private readonly out: ByteSink) {}

  async add(entry: ArchiveEntry, content?: AsyncIterable<Buffer>): Promise<void> {
    if (entry.type === 'hardlink') throw new Error('zip: no hardlinks');
    const name = entry.type === 'dir' ? Buffer.concat([entry.path, Buffer.from('/')]) : entry.path;
    const size = entry.type === 'file' ? (entry.size ?? 0) : entry.type === 'symlink' ? entry.link!.length : 0;
    const zip64 = size >= ZIP64_SIZE;
    const w: Written = {
      name,
      // 8: sizes and CRC in the descriptor after the data; 0x800: the name is UTF-8
      flags: 0x8 | (isUtf8(name) ? 0x800 : 0),
      method: entry.type === 'file' && size > 0 ? 8 : 0,
      dos: dosTime(entry.mtime[0]),
      crc: 0,
      csize: 0,
      usize: 0,
      offset: this.offset,
      external: ((S_IF[entry.type] | (entry.mode & 0o7777)) << 16) >>> 0,
      mtime: entry.mtime[0],
    };
    const extra = Buffer.concat([timestampField(w.mtime), zip64 ? zip64Field([0, 0]) : Buffer.alloc(0)]);
    await this.emit(localHeader(w, zip64, extra));
    if (entry.type === 'file') await this.content(w, content ?? [], entry.path);
    else if (entry.type === 'symlink') await this.stored(w, entry.link!);
    if (w.usize !== size) throw new KeepError('CORRUPT', `${entry.path.toString()}: content is ${w.usize} bytes, the tree records ${size}`);
    const d = Buffer.alloc(zip64 ? 24 : 16);
    d.writeUInt32LE(DESCRIPTOR, 0);
    d.writeUInt32LE(w.crc, 4);
    if (zip64) {
      d.writeBigUInt64LE(BigInt(w.csize), 8);
      d.writeBigUInt64LE(BigInt(w.usize), 16);
    } else {
      d.writeUInt32LE(w.csize, 8);
      d.writeUInt32LE(w.usize, 12);
    }
    await this.emit(d);
    this.written.push(w);
  }

  async finish(): Promise<void> {
    const start = this.offset;
    for (const w of this.written) await this.emit(centralHeader(w));
    const size = this.offset - start;
    const count = this.written.length;
    if (count > 0xffff || start > MAX32 || size > MAX32) {
      const at = this.offset;
      const r = Buffer.alloc(56);
      r.writeUInt32LE(END64, 0);
      r.writeBigUInt64LE(44n, 4);
      r.writeUInt16LE(0x031e, 12);
      r.writeUInt16LE(45, 14);
      r.writeBigUInt64LE(BigInt(count), 24);
      r.writeBigUInt64LE(BigInt(count), 32);
      r.writeBigUInt64LE(BigInt(size), 40);
      r.writeBigUInt64LE(BigInt(start), 48);
      const l = Buffer.alloc(20);
      l.writeUInt32LE(LOCATOR64, 0);
      l.writeBigUInt64LE(BigInt(at), 8);
      l.writeUInt32LE(1, 16);
      await this.emit(Buffer.concat([r, l]));
    }
    const e = Buffer.alloc(22);
    e.writeUInt32LE(END, 0);
    e.writeUInt16LE(Math.min(count, 0xffff), 8);
    e.writeUInt16LE(Math.min(count, 0xffff), 10);
    e.writeUInt32LE(Math.min(size, MAX32), 12);
    e.writeUInt32LE(Math.min(start, MAX32), 16);
    await this.emit(e);
  }

  private async emit(b: Buffer): Promise<void> {
    this.offset += b.length;
    await this.out.write(b);
  }

  private async stored(w: Written, data: Buffer): Promise<void> {
    w.crc = zlib.crc32(data);
    w.usize = w.csize = data.length;
    await this.emit(data);
  }

  /** A file's content, deflated as it arrives (or stored, when empty). */
  private async content(w: Written, content: AsyncIterable<Buffer> | Iterable<Buffer>, path: Buffer): Promise<void> {
    if (w.method === 0) {
      for await (const piece of content) if (piece.length) throw new KeepError('CORRUPT', `${path.toString()}: content where the tree records none`);
      return;
    }
    const deflate = zlib.createDeflateRaw();
    const pump = (async () => {
      for await (const out of deflate) {
        w.csize += out.length;
        await this.emit(out);
      }
    })();
    try {
      for await (const piece of content) {
        w.crc = zlib.crc32(piece, w.crc);
        w.usize += piece.length;
        if (!deflate.write(piece)) await once(deflate, 'drain');
      }
    } finally {
      deflate.end();
      await pump;
    }
  }
}

function isUtf8(b: Buffer): boolean {
  return Buffer.from(b.toString('utf8'), 'utf8').equals(b);
}

/** MS-DOS date and time (local time, 2-second steps), clamped to its 1980-2107 range. */
function dosTime(seconds: number): number {
  const d = new Date(Math.min(Math.max(seconds * 1000, new Date(1980, 0, 1).getTime()), new Date(2107, 11, 31, 23, 59, 58).getTime()));
  const time = (d.getHours() << 11) | (d.getMinutes() << 5) | (d.getSeconds() >> 1);
  const date = ((d.getFullYear() - 1980) << 9) | ((d.getMonth() + 1) << 5) | d.getDate();
  return ((date << 16) | time) >>> 0;
}

/** Extended timestamp (0x5455): the mtime in seconds, when a signed 32-bit field holds it. */
function timestampField(mtime: number): Buffer {
  if (mtime < -0x80000000 || mtime > 0x7fffffff) return Buffer.alloc(0);
  const b = Buffer.alloc(9);
  b.writeUInt16LE(0x5455, 0);
  b.writeUInt16LE(5, 2);
  b.writeUInt8(1, 4);
  b.writeInt32LE(mtime, 5);
  return b;
}

/** Zip64 extended information (0x0001): the 64-bit values whose 32-bit fields hold 0xffffffff. */
function zip64Field(values: number[]): Buffer {
  const b = Buffer.alloc(4 + 8 * values.length);
  b.writeUInt16LE(0x0001, 0);
  b.writeUInt16LE(8 * values.length, 2);
  values.forEach((v, i) => b.writeBigUInt64LE(BigInt(v), 4 + 8 * i));
  return b;
}

function localHeader(w: Written, zip64: boolean, extra: Buffer): Buffer {
  const h = Buffer.alloc(30);
  h.writeUInt32LE(LOCAL, 0);
  h.writeUInt16LE(zip64 ? 45 : 20, 4);
  h.writeUInt16LE(w.flags, 6);
  h.writeUInt16LE(w.method, 8);
  h.writeUInt32LE(w.dos, 10);
  // CRC and sizes: in the descriptor (zip64: 0xffffffff here, the 64-bit values there)
  if (zip64) h.writeUInt32LE(MAX32, 18), h.writeUInt32LE(MAX32, 22);
  h.writeUInt16LE(w.name.length, 26);
  h.writeUInt16LE(extra.length, 28);
  return Buffer.concat([h, w.name, extra]);
}

function centralHeader(w: Written): Buffer {
  const big = [w.usize, w.csize, w.offset].map((v) => v >= MAX32);
  const extra = Buffer.concat([timestampField(w.mtime), big.some(Boolean) ? zip64Field([w.usize, w.csize, w.offset].filter((_, i) => big[i])) : Buffer.alloc(0)]);
  const h = Buffer.alloc(46);
  h.writeUInt32LE(CENTRAL, 0);
  h.writeUInt16LE(0x0300 | 45, 4); // made by: Unix, zip 4.5
  h.writeUInt16LE(big.some(Boolean) ? 45 : 20, 6);
  h.writeUInt16LE(w.flags, 8);
  h.writeUInt16LE(w.method, 10);
  h.writeUInt32LE(w.dos, 12);
  h.writeUInt32LE(w.crc, 16);
  h.writeUInt32LE(big[1] ? MAX32 : w.csize, 20);
  h.writeUInt32LE(big[0] ? MAX32 : w.usize, 24);
  h.writeUInt16LE(w.name.length, 28);
  h.writeUInt16LE(extra.length, 30);
  h.writeUInt32LE(w.external, 38);
  h.writeUInt32LE(big[2] ? MAX32 : w.offset, 42);
  return Buffer.concat([h, w.name, extra]);
}
