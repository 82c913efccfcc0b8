import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { MiB } from './util.js';

/**
 * Synthetic backup data: thousands of small files, a few large ones (part
 * text-like and compressible, part random), and a second generation that
 * changes ~10% of the bytes the way real trees change (edits, appends, an
 * insertion that shifts a file, new and deleted files).
 *
 * Text-like data is words drawn with a skewed (Zipf-ish) distribution from a
 * random vocabulary: it compresses ~3-4x with zstd, like source code or logs,
 * and no two files share content, so any dedup measured comes from the
 * generations, not from the generator.
 */

/** xorshift32: fast, seedable, good enough for picking words. */
export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0 || 0x9e3779b9;
  }
  u32(): number {
    let x = this.s;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.s = x >>> 0;
    return this.s;
  }
  /** [0, 1) */
  float(): number {
    return this.u32() / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.float() * n);
  }
}

const VOCAB_SIZE = 8192;
let vocab: Uint8Array[] | undefined;
function vocabulary(): Uint8Array[] {
  if (vocab) return vocab;
  const r = new Rng(12345);
  const letters = 'etaoinshrdlcumwfgypbvkjxqz';
  vocab = [];
  for (let i = 0; i < VOCAB_SIZE; i++) {
    const len = 2 + Math.min(r.int(6) + r.int(6), 12);
    const w = new Uint8Array(len);
    // skew letters toward the common ones, like natural text
    for (let k = 0; k < len; k++) w[k] = letters.charCodeAt(Math.floor(26 * r.float() ** 2));
    vocab.push(w);
  }
  return vocab;
}

/** Fill `buf` with text-like bytes (words, punctuation, numbers, lines). */
export function fillText(buf: Uint8Array, rng: Rng): void {
  const v = vocabulary();
  const n = buf.length;
  let pos = 0;
  let col = 0;
  while (pos < n) {
    const r = rng.u32();
    if ((r & 63) === 0) {
      // a number
      let num = rng.u32() % 100000;
      do {
        if (pos >= n) break;
        buf[pos++] = 48 + (num % 10);
        num = Math.floor(num / 10);
        col++;
      } while (num > 0);
    } else {
      const f = (r >>> 8) / 16777216;
      const w = v[Math.floor(VOCAB_SIZE * f * f * f)];
      for (let k = 0; k < w.length && pos < n; k++) buf[pos++] = w[k];
      col += w.length;
    }
    if (pos >= n) break;
    if (col > 72) {
      buf[pos++] = 10;
      col = 0;
    } else if ((r & 0xf0) === 0) {
      buf[pos++] = 44; // ','
      if (pos < n) buf[pos++] = 32;
      col += 2;
    } else {
      buf[pos++] = 32;
      col++;
    }
  }
}

const ZERO = Buffer.alloc(MiB);

/** Incompressible bytes, reproducible from the seed (AES-128-CTR keystream): the same dataset every run. */
export function fillRandom(buf: Uint8Array, rng: Rng): void {
  const seed = Buffer.alloc(32);
  for (let i = 0; i < 8; i++) seed.writeUInt32LE(rng.u32(), i * 4);
  const c = crypto.createCipheriv('aes-128-ctr', seed.subarray(0, 16), seed.subarray(16));
  for (let o = 0; o < buf.length; o += MiB) {
    const n = Math.min(MiB, buf.length - o);
    buf.set(c.update(ZERO.subarray(0, n)), o);
  }
}

export type Kind = 'text' | 'random' | 'mixed';

/** Content of `size` bytes of the given kind. Mixed alternates 1 MiB text and random blocks (a disk image, a tar). */
export function content(kind: Kind, size: number, rng: Rng): Buffer {
  const b = Buffer.allocUnsafe(size);
  if (kind === 'text') fillText(b, rng);
  else if (kind === 'random') fillRandom(b, rng);
  else {
    for (let o = 0, i = 0; o < size; o += MiB, i++) {
      const part = b.subarray(o, Math.min(size, o + MiB));
      if (i % 2 === 0) fillText(part, rng);
      else fillRandom(part, rng);
    }
  }
  return b;
}

export interface DatasetPlan {
  totalBytes: number;
  smallFiles: number;
  seed: number;
}

export function planFor(mode: 'quick' | 'default' | 'full', sizeMiB?: number): DatasetPlan {
  const base = { quick: { mib: 30, small: 2000 }, default: { mib: 100, small: 5000 }, full: { mib: 300, small: 12000 } }[mode];
  const mib = sizeMiB ?? base.mib;
  return { totalBytes: Math.round(mib * MiB), smallFiles: Math.max(50, Math.round((base.small * mib) / base.mib)), seed: 20240601 };
}

interface SmallFile {
  rel: string;
  kind: Kind;
  size: number;
}

export interface Dataset {
  root: string;
  plan: DatasetPlan;
  small: SmallFile[];
  large: { rel: string; kind: Kind; size: number }[];
  dirs: string[];
  rng: Rng;
}

export interface DatasetSummary {
  bytes: number;
  files: number;
  small_files: number;
  small_bytes: number;
  large_files: number;
  large_bytes: number;
  text_bytes: number;
  random_bytes: number;
  dirs: number;
  gen_seconds: number;
}

const SMALL_SHARE = 0.2;
/** Large files as shares of the total size. */
const LARGE: { rel: string; kind: Kind; share: number }[] = [
  { rel: 'large/docs-a.txt', kind: 'text', share: 0.18 },
  { rel: 'large/logs-b.log', kind: 'text', share: 0.14 },
  { rel: 'large/media-c.bin', kind: 'random', share: 0.18 },
  { rel: 'large/archive-d.bin', kind: 'random', share: 0.14 },
  { rel: 'large/disk-e.img', kind: 'mixed', share: 0.16 },
];

function smallKind(rng: Rng): Kind {
  return rng.float() < 0.7 ? 'text' : 'random';
}

function smallName(i: number, kind: Kind, rng: Rng): string {
  const ext = kind === 'text' ? ['.txt', '.c', '.json', '.md', '.ts'][rng.int(5)] : ['.jpg', '.bin', '.gz'][rng.int(3)];
  return `file-${String(i).padStart(5, '0')}${ext}`;
}

/** Log-uniform sizes from 32 B up, scaled so they sum to `budget`. */
function smallSizes(count: number, budget: number, rng: Rng): number[] {
  const raw = Array.from({ length: count }, () => Math.exp(Math.log(32) + rng.float() * (Math.log(64 * 1024) - Math.log(32))));
  const sum = raw.reduce((a, b) => a + b, 0);
  return raw.map((s) => Math.max(1, Math.min(MiB, Math.round((s * budget) / sum))));
}

function write(root: string, rel: string, data: Buffer): void {
  const p = path.join(root, rel);
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.writeFileSync(p, data);
}

/** Generation 1 into `root` (created). */
export function generate(root: string, plan: DatasetPlan): { ds: Dataset; summary: DatasetSummary } {
  const t0 = performance.now();
  const rng = new Rng(plan.seed);
  fs.mkdirSync(root, { recursive: true });
  const ds: Dataset = { root, plan, small: [], large: [], dirs: [], rng };
  const sizes = smallSizes(plan.smallFiles, plan.totalBytes * SMALL_SHARE, rng);
  // ~40 files per directory, two levels deep
  const perDir = 40;
  for (let i = 0; i < sizes.length; i++) {
    const d = Math.floor(i / perDir);
    const dir = `tree/proj-${String(Math.floor(d / 10)).padStart(3, '0')}/sub-${String(d % 10)}`;
    if (i % perDir === 0) ds.dirs.push(dir);
    const kind = smallKind(rng);
    const rel = `${dir}/${smallName(i, kind, rng)}`;
    write(root, rel, content(kind, sizes[i], rng));
    ds.small.push({ rel, kind, size: sizes[i] });
  }
  for (const l of LARGE) {
    const size = Math.round(plan.totalBytes * l.share);
    write(root, l.rel, content(l.kind, size, rng));
    ds.large.push({ rel: l.rel, kind: l.kind, size });
  }
  return { ds, summary: summarize(ds, (performance.now() - t0) / 1000) };
}

export function summarize(ds: Dataset, genSeconds: number): DatasetSummary {
  let text = 0;
  let random = 0;
  const all = [...ds.small, ...ds.large];
  for (const f of all) {
    if (f.kind === 'text') text += f.size;
    else if (f.kind === 'random') random += f.size;
    else (text += Math.ceil(f.size / 2)), (random += Math.floor(f.size / 2));
  }
  const smallBytes = ds.small.reduce((a, f) => a + f.size, 0);
  const largeBytes = ds.large.reduce((a, f) => a + f.size, 0);
  return {
    bytes: smallBytes + largeBytes,
    files: all.length,
    small_files: ds.small.length,
    small_bytes: smallBytes,
    large_files: ds.large.length,
    large_bytes: largeBytes,
    text_bytes: text,
    random_bytes: random,
    dirs: new Set(ds.small.map((f) => path.dirname(f.rel))).size + 1,
    gen_seconds: genSeconds,
  };
}

export interface MutationSummary {
  /** bytes written that differ from generation 1 (edits, appends, inserts, new files) */
  changed_bytes: number;
  changed_fraction: number;
  files_modified: number;
  files_added: number;
  files_deleted: number;
  bytes_after: number;
  files_after: number;
}

function overwrite(p: string, offset: number, data: Buffer): void {
  const fd = fs.openSync(p, 'r+');
  try {
    fs.writeSync(fd, data, 0, data.length, offset);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Generation 2, in place: 10% of the small files rewritten, 2% deleted, 2%
 * new; one text file appended to (+10%), a log rewritten in one region, a
 * disk image overwritten in one region, an archive with bytes inserted in
 * the middle (shifting everything after: content-defined chunking must
 * re-synchronise). One random file stays as it was.
 */
export function mutate(ds: Dataset): MutationSummary {
  const { rng, root, plan } = ds;
  const before = ds.small.reduce((a, f) => a + f.size, 0) + ds.large.reduce((a, f) => a + f.size, 0);
  let changed = 0;
  let modified = 0;
  let added = 0;
  let deleted = 0;

  // small files: shuffle a copy of the indices and take disjoint slices
  const idx = ds.small.map((_, i) => i);
  for (let i = idx.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [idx[i], idx[j]] = [idx[j], idx[i]];
  }
  const nMod = Math.round(ds.small.length * 0.1);
  const nDel = Math.round(ds.small.length * 0.02);
  const nAdd = Math.round(ds.small.length * 0.02);
  for (const i of idx.slice(0, nMod)) {
    const f = ds.small[i];
    const size = Math.max(1, Math.round(f.size * (0.8 + 0.4 * rng.float())));
    write(root, f.rel, content(f.kind, size, rng));
    f.size = size;
    changed += size;
    modified++;
  }
  const del = new Set(idx.slice(nMod, nMod + nDel));
  for (const i of del) {
    fs.rmSync(path.join(root, ds.small[i].rel));
    deleted++;
  }
  ds.small = ds.small.filter((_, i) => !del.has(i));
  const avgSmall = (plan.totalBytes * SMALL_SHARE) / plan.smallFiles;
  for (let k = 0; k < nAdd; k++) {
    const dir = ds.dirs[rng.int(ds.dirs.length)];
    const kind = smallKind(rng);
    const size = Math.max(1, Math.round(avgSmall * 2 * rng.float()));
    const rel = `${dir}/new-${String(k).padStart(5, '0')}${kind === 'text' ? '.txt' : '.bin'}`;
    write(root, rel, content(kind, size, rng));
    ds.small.push({ rel, kind, size });
    changed += size;
    added++;
  }

  const large = (name: string) => ds.large.find((l) => l.rel.endsWith(name))!;
  // append 10% to a document
  {
    const f = large('docs-a.txt');
    const extra = content('text', Math.round(f.size * 0.1), rng);
    fs.appendFileSync(path.join(root, f.rel), extra);
    f.size += extra.length;
    changed += extra.length;
    modified++;
  }
  // overwrite one region (`share` of the total) of a large file, in place
  const overwriteRegion = (name: string, share: number, kind: Kind) => {
    const f = large(name);
    const len = Math.min(f.size, Math.round(plan.totalBytes * share));
    const off = rng.int(f.size - len + 1);
    overwrite(path.join(root, f.rel), off, content(kind, len, rng));
    changed += len;
    modified++;
  };
  overwriteRegion('logs-b.log', 0.02, 'text'); // the log: 2% rewritten
  overwriteRegion('disk-e.img', 0.05, 'mixed'); // the disk image: 5% rewritten
  // insert 1% of the total at 40% of the archive
  {
    const f = large('archive-d.bin');
    const p = path.join(root, f.rel);
    const old = fs.readFileSync(p);
    const at = Math.floor(old.length * 0.4);
    const ins = content('random', Math.round(plan.totalBytes * 0.01), rng);
    fs.writeFileSync(p, Buffer.concat([old.subarray(0, at), ins, old.subarray(at)]));
    f.size += ins.length;
    changed += ins.length;
    modified++;
  }
  const after = ds.small.reduce((a, f) => a + f.size, 0) + ds.large.reduce((a, f) => a + f.size, 0);
  return {
    changed_bytes: changed,
    changed_fraction: changed / before,
    files_modified: modified,
    files_added: added,
    files_deleted: deleted,
    bytes_after: after,
    files_after: ds.small.length + ds.large.length,
  };
}
