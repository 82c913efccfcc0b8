import fs from 'node:fs';

/**
 * A cheap look at an LMDB data file before LMDB maps it. LMDB trusts its file:
 * zeroed meta pages or a truncated file make it crash the process (SIGSEGV,
 * SIGBUS, an assertion abort) instead of returning an error. Checked here:
 * both meta pages (page 0 and page 1) carry the meta flag, LMDB's magic and
 * data version, one page size, their own page number, and a last page and
 * roots that lie inside the file. Residual limit: damage inside the B-tree
 * (random pages) passes this check; only rebuilding the index, which never
 * opens the damaged file, cures it.
 *
 * Layout (lmdb-js 3.x's LMDB, 64-bit): a 24-byte page header (pgno u64,
 * txnid u64, pad u16, flags u16, lower u16, upper u16), then the meta:
 * magic u32, version u32, address u64, mapsize u64, the free-list and main
 * database records (48 bytes each; the free one's first u32 is the page
 * size, each ends with its root page), last page u64, txnid u64.
 */
const MAGIC = 0xbeefc0de;
const DATA_VERSION = 2;
const P_META = 0x08;
const P_INVALID = 0xffffffffffffffffn;
const HEADER = 24;
const META = {
  pgno: 0,
  flags: 18,
  magic: HEADER,
  version: HEADER + 4,
  psize: HEADER + 24,
  freeRoot: HEADER + 64,
  mainRoot: HEADER + 112,
  lastPage: HEADER + 120,
  txnid: HEADER + 128,
  end: HEADER + 136,
};

export type LmdbFileState = { kind: 'missing' } | { kind: 'ok' } | { kind: 'damaged'; reason: string };

function readAt(fd: number, pos: number, len: number): Buffer {
  const b = Buffer.alloc(len);
  const n = fs.readSync(fd, b, 0, len, pos);
  return b.subarray(0, n);
}

function metaProblem(page: Buffer, i: number, size: number): string | { psize: number; txnid: bigint } {
  if (page.length < META.end) return `meta page ${i} is cut short`;
  if (page.readBigUInt64LE(META.pgno) !== BigInt(i)) return `meta page ${i} names another page`;
  if ((page.readUInt16LE(META.flags) & P_META) === 0) return `page ${i} is not a meta page`;
  if (page.readUInt32LE(META.magic) !== MAGIC) return `meta page ${i} has no LMDB magic`;
  if (page.readUInt32LE(META.version) !== DATA_VERSION) return `meta page ${i} has data version ${page.readUInt32LE(META.version)}, not ${DATA_VERSION}`;
  const psize = page.readUInt32LE(META.psize);
  if (psize < 512 || psize > 65536 || (psize & (psize - 1)) !== 0) return `meta page ${i} has page size ${psize}`;
  const last = page.readBigUInt64LE(META.lastPage);
  if ((last + 1n) * BigInt(psize) > BigInt(size)) return `the file is truncated (${size} bytes, meta page ${i} ends at page ${last})`;
  for (const at of [META.freeRoot, META.mainRoot]) {
    const root = page.readBigUInt64LE(at);
    if (root !== P_INVALID && root > last) return `meta page ${i} points past the last page`;
  }
  return { psize, txnid: page.readBigUInt64LE(META.txnid) };
}

/** Whether `file` is absent (or empty: LMDB had not written it yet), plausibly intact, or damaged and why. */
export function checkLmdbFile(file: string): LmdbFileState {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'missing' };
    return { kind: 'damaged', reason: `cannot be read: ${(e as Error).message}` };
  }
  try {
    const size = fs.fstatSync(fd).size;
    if (size === 0) return { kind: 'missing' };
    const m0 = metaProblem(readAt(fd, 0, META.end), 0, size);
    if (typeof m0 === 'string') return { kind: 'damaged', reason: m0 };
    const m1 = metaProblem(readAt(fd, m0.psize, META.end), 1, size);
    if (typeof m1 === 'string') return { kind: 'damaged', reason: m1 };
    if (m1.psize !== m0.psize) return { kind: 'damaged', reason: 'the meta pages disagree on the page size' };
    return { kind: 'ok' };
  } finally {
    fs.closeSync(fd);
  }
}
