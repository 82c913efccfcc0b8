import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** 1 MB = 1e6 bytes (rates); sizes are also shown in MiB where that reads better. */
export const MB = 1e6;
export const MiB = 1024 * 1024;

export const mbps = (bytes: number, seconds: number): number => (seconds > 0 ? bytes / seconds / MB : NaN);

export function median(xs: number[]): number {
  const v = [...xs].sort((a, b) => a - b);
  const m = Math.floor(v.length / 2);
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

export function fmtNum(n: number | null | undefined, digits = 1): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return '-';
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

export function fmtInt(n: number | null | undefined): string {
  return n === null || n === undefined || !Number.isFinite(n) ? '-' : Math.round(n).toLocaleString('en-US');
}

export function fmtBytes(n: number): string {
  return `${fmtNum(n / MB, 1)} MB`;
}

/** Column i (never the first) is numeric when at least half its non-empty cells start with a digit or '-'. */
function numericColumn(rows: string[][], i: number): boolean {
  const cells = rows.map((r) => r[i] ?? '').filter((c) => c !== '');
  return i > 0 && cells.filter((c) => /^[-\d]/.test(c)).length * 2 >= cells.length;
}

/** A plain text table: mostly numeric columns (cells starting with a digit or '-') right-aligned, text left-aligned. */
export function textTable(header: string[], rows: string[][], title?: string): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const numeric = header.map((_, i) => numericColumn(rows, i));
  const line = (cells: string[]) => cells.map((c, i) => (numeric[i] ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  ').trimEnd();
  const out: string[] = [];
  if (title) out.push(title);
  out.push(line(header), widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows) out.push(line(r));
  return out.join('\n');
}

export function mdTable(header: string[], rows: string[][]): string {
  const esc = (s: string) => s.replace(/\|/g, '\\|');
  return [
    `| ${header.map(esc).join(' | ')} |`,
    `| ${header.map((_, i) => (numericColumn(rows, i) ? '--:' : ':--')).join(' | ')} |`,
    ...rows.map((r) => `| ${r.map(esc).join(' | ')} |`),
  ].join('\n');
}

/** A fresh temp dir under os.tmpdir(); every one made is removed by `cleanupTemps`. */
const temps = new Set<string>();
export function tempDir(prefix: string): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), `keep-bench-${prefix}-`));
  temps.add(d);
  return d;
}
export function removeTemp(d: string): void {
  fs.rmSync(d, { recursive: true, force: true });
  temps.delete(d);
}
export function cleanupTemps(): void {
  for (const d of [...temps]) removeTemp(d);
}

/** Apparent size of the regular files below `dir` (0 when absent). */
export function dirBytes(dir: string): number {
  let total = 0;
  if (!fs.existsSync(dir)) return 0;
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) total += fs.statSync(p).size;
    }
  };
  walk(dir);
  return total;
}

export interface TreeManifest {
  files: Map<string, string>; // relative path -> sha256 (regular files) or "symlink:<target>"
  bytes: number;
  fileCount: number;
  dirCount: number;
  /** regular files that could not be read (EACCES...), left out of the comparison */
  unreadable: string[];
}

/** Hash every regular file (and record every symlink) below `root`. */
export function manifest(root: string): TreeManifest {
  const m: TreeManifest = { files: new Map(), bytes: 0, fileCount: 0, dirCount: 0, unreadable: [] };
  const buf = Buffer.allocUnsafe(4 * MiB);
  const walk = (abs: string, rel: string) => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(abs, { withFileTypes: true });
    } catch {
      m.unreadable.push(rel || '.');
      return;
    }
    for (const e of entries) {
      const a = path.join(abs, e.name);
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) {
        m.dirCount++;
        walk(a, r);
      } else if (e.isSymbolicLink()) {
        m.files.set(r, `symlink:${fs.readlinkSync(a)}`);
      } else if (e.isFile()) {
        let fd: number;
        try {
          fd = fs.openSync(a, 'r');
        } catch {
          m.unreadable.push(r);
          continue;
        }
        try {
          const h = crypto.createHash('sha256');
          let n: number;
          let size = 0;
          while ((n = fs.readSync(fd, buf, 0, buf.length, null)) > 0) {
            h.update(buf.subarray(0, n));
            size += n;
          }
          m.files.set(r, h.digest('hex'));
          m.bytes += size;
          m.fileCount++;
        } finally {
          fs.closeSync(fd);
        }
      }
    }
  };
  walk(root, '');
  return m;
}

/** Differences between a source manifest and a restored one; empty when identical. */
export function compareManifests(src: TreeManifest, got: TreeManifest, limit = 10): string[] {
  const problems: string[] = [];
  const skip = new Set(src.unreadable);
  for (const [p, h] of src.files) {
    const g = got.files.get(p);
    if (g === undefined) problems.push(`missing: ${p}`);
    else if (g !== h) problems.push(`content differs: ${p}`);
    if (problems.length >= limit) return problems;
  }
  for (const p of got.files.keys()) {
    if (!src.files.has(p) && !skip.has(p)) problems.push(`unexpected: ${p}`);
    if (problems.length >= limit) return problems;
  }
  return problems;
}

export function machineInfo() {
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model ?? 'unknown',
    cores: os.availableParallelism(),
    memory_gib: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    tmpdir: os.tmpdir(),
  };
}
