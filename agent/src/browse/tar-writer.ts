import { KeepError } from '@keep/core';
import type { ArchiveEntry, ArchiveType, ArchiveWriter } from './archive-entry.js';
import type { ByteSink } from './byte-sink.js';

const BLOCK = 512;
const TYPEFLAG: Record<ArchiveType, string> = { file: '0', hardlink: '1', symlink: '2', dir: '5' };
/** largest value of a 12-byte and an 8-byte octal field (11 and 7 digits) */
const MAX_SIZE = 0o77777777777;
const MAX_ID = 0o7777777;

/**
 * A POSIX tar (pax) stream, written entry by entry. Each entry gets a ustar
 * header; a pax extended header goes before it when a field does not fit
 * there: a path or link over 100 bytes, a size or id beyond the octal fields,
 * an mtime with a fraction of a second (so `tar -x` restores it to the
 * nanosecond). Names are written as the bytes they are (GNU tar extracts
 * them so, UTF-8 or not).
 */
export class TarWriter implements ArchiveWriter {
  readonly hardlinks = true;
  private pending = 0;

  constructor(private readonly out: ByteSink) {}

  /** Write `entry`'s headers, then its content (a file's, exactly `entry.size` bytes). */
  async add(entry: ArchiveEntry, content?: AsyncIterable<Buffer>): Promise<void> {
    if (this.pending) throw new Error('tar: previous entry not complete');
    const name = entry.type === 'dir' ? Buffer.concat([entry.path, Buffer.from('/')]) : entry.path;
    const size = entry.type === 'file' ? (entry.size ?? 0) : 0;
    const pax = paxRecords(entry, name, size);
    if (pax.length) await this.out.write(paxHeader(name, pax));
    await this.out.write(ustarHeader(entry, name, size));
    if (entry.type !== 'file') return;
    this.pending = size;
    for await (const piece of content ?? []) {
      if (piece.length > this.pending) throw new KeepError('CORRUPT', `${entry.path.toString()}: content is longer than its recorded size`);
      this.pending -= piece.length;
      await this.out.write(piece);
    }
    if (this.pending) throw new KeepError('CORRUPT', `${entry.path.toString()}: content is shorter than its recorded size`);
    await this.pad(size);
  }

  /** The end-of-archive marker: two zero blocks. */
  async finish(): Promise<void> {
    await this.out.write(Buffer.alloc(2 * BLOCK));
  }

  private async pad(size: number): Promise<void> {
    const rest = size % BLOCK;
    if (rest) await this.out.write(Buffer.alloc(BLOCK - rest));
  }
}

/** The pax records the ustar header cannot carry. */
function paxRecords(e: ArchiveEntry, name: Buffer, size: number): Buffer[] {
  const records: Buffer[] = [];
  const link = e.link ?? Buffer.alloc(0);
  if (name.length > 100) records.push(paxRecord('path', name));
  if (link.length > 100) records.push(paxRecord('linkpath', link));
  if (size > MAX_SIZE) records.push(paxRecord('size', Buffer.from(String(size))));
  if (e.uid > MAX_ID || e.uid < 0) records.push(paxRecord('uid', Buffer.from(String(e.uid))));
  if (e.gid > MAX_ID || e.gid < 0) records.push(paxRecord('gid', Buffer.from(String(e.gid))));
  if (e.mtime[1] !== 0 || e.mtime[0] < 0 || e.mtime[0] > MAX_SIZE) records.push(paxRecord('mtime', Buffer.from(decimalTime(e.mtime))));
  return records;
}

/** [seconds, nanoseconds] (both negative before 1970) as pax's decimal seconds: -86400.250000000 */
function decimalTime([s, ns]: [number, number]): string {
  const total = BigInt(s) * 1_000_000_000n + BigInt(ns);
  const abs = total < 0n ? -total : total;
  return `${total < 0n ? '-' : ''}${abs / 1_000_000_000n}.${String(abs % 1_000_000_000n).padStart(9, '0')}`;
}

/** "LEN key=value\n", LEN counting the whole record, its own digits included. */
function paxRecord(key: string, value: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`), value, Buffer.from('\n')]);
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return Buffer.concat([Buffer.from(String(len)), body]);
}

function paxHeader(name: Buffer, records: Buffer[]): Buffer {
  const data = Buffer.concat(records);
  const base = name.subarray(name.lastIndexOf(0x2f, name.length - 2) + 1);
  const paxName = Buffer.concat([Buffer.from('PaxHeaders/'), base]).subarray(0, 100);
  const header = ustarHeader({ path: paxName, type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: [0, 0] }, paxName, data.length, 'x');
  const rest = data.length % BLOCK;
  return Buffer.concat([header, data, Buffer.alloc(rest ? BLOCK - rest : 0)]);
}

/** One 512-byte ustar header; fields that do not fit are cut short (their pax record, written before, wins). */
function ustarHeader(e: ArchiveEntry, name: Buffer, size: number, typeflag = TYPEFLAG[e.type]): Buffer {
  const h = Buffer.alloc(BLOCK);
  name.copy(h, 0, 0, Math.min(name.length, 100));
  octal(h, 100, 8, e.mode & 0o7777);
  octal(h, 108, 8, Math.min(Math.max(e.uid, 0), MAX_ID));
  octal(h, 116, 8, Math.min(Math.max(e.gid, 0), MAX_ID));
  octal(h, 124, 12, Math.min(size, MAX_SIZE));
  octal(h, 136, 12, Math.min(Math.max(e.mtime[0], 0), MAX_SIZE));
  h.write(typeflag, 156, 'latin1');
  if (e.link) e.link.copy(h, 157, 0, Math.min(e.link.length, 100));
  h.write('ustar\x0000', 257, 'latin1');
  // checksum: the header's bytes summed with the checksum field taken as spaces
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\x00 `, 148, 'latin1');
  return h;
}

function octal(h: Buffer, at: number, width: number, value: number): void {
  h.write(`${value.toString(8).padStart(width - 1, '0')}\x00`, at, 'latin1');
}
