/**
 * Shared helpers for the end-to-end tests: they drive the real `keep` binary
 * as a user would (child processes, environment variables, files on disk).
 * Nothing here imports agent or core internals.
 */
import { spawn, execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, expect } from 'vitest';

export const ROOT = fileURLToPath(new URL('..', import.meta.url)).replace(/\/$/, '');
export const KEEP_BIN = path.join(ROOT, 'node_modules', '.bin', 'keep');

export const MiB = 1024 * 1024;

// ---------------------------------------------------------------- temp dirs

function rmrf(p: string): void {
  try {
    fs.rmSync(p, { recursive: true, force: true });
  } catch {
    // Read-only directories (mode 0555 in a generated tree) block removal for non-root users.
    try {
      execFileSync('chmod', ['-R', 'u+rwx', p]);
    } catch {
      /* best effort */
    }
    fs.rmSync(p, { recursive: true, force: true });
  }
}

/**
 * Temporary directories under os.tmpdir(), removed after the enclosing
 * describe (or file) finishes. Call at describe level, not inside a test.
 */
export function tempDirs(): { make(prefix?: string): string } {
  const made: string[] = [];
  afterAll(() => {
    for (const d of made.reverse()) rmrf(d);
  });
  return {
    make(prefix = 'keep-e2e-') {
      const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
      made.push(d);
      return d;
    },
  };
}

// ---------------------------------------------------------------- running keep

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
  /** raw stdout bytes (ls of non-UTF-8 names) */
  stdoutBytes: Buffer;
}

export interface RunOptions {
  env?: Record<string, string | undefined>;
  /** written to the child's stdin, which is then closed */
  input?: Buffer | string;
  cwd?: string;
  timeoutMs?: number;
  /** a command that runs keep (e.g. setpriv to another uid): spawned as [...wrap, keep, ...args] */
  wrap?: string[];
}

/** Run `keep ARGS` with a clean KEEP_* environment plus `env`. */
export function keep(args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('KEEP_')) env[k] = v;
  for (const [k, v] of Object.entries(opts.env ?? {})) if (v !== undefined) env[k] = v;
  return new Promise((resolve, reject) => {
    const [cmd, ...pre] = [...(opts.wrap ?? []), KEEP_BIN];
    const child = spawn(cmd, [...pre, ...args], { env, cwd: opts.cwd ?? ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 90_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      const stdoutBytes = Buffer.concat(out);
      resolve({ code, stdout: stdoutBytes.toString(), stderr: Buffer.concat(err).toString(), stdoutBytes });
    });
    // The child may exit without reading stdin (a usage error): ignore EPIPE.
    child.stdin.on('error', () => undefined);
    if (opts.input !== undefined) child.stdin.end(opts.input);
    else child.stdin.end();
  });
}

/**
 * Parse stdout as exactly one JSON document (JSON.parse rejects trailing
 * text, so two documents or a stray log line fail here).
 */
export function parseOneJson(r: RunResult): any {
  const text = r.stdout.trim();
  // backup and restore print restic's JSON lines: their result is the summary line
  if (/^\{"message_type":/.test(text)) return summaryLine(r);
  expect(text, 'stdout should hold one JSON document').toMatch(/^[[{]/);
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`stdout is not one JSON document (${(e as Error).message}):\n${r.stdout.slice(0, 2000)}`);
  }
}

/** A backup's or restore's --json stdout as restic's JSON lines: one compact message a line, each with its message_type. */
export function jsonLines(r: { stdout: string }): any[] {
  return r.stdout
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => {
      try {
        const m = JSON.parse(l);
        expect(typeof m.message_type, `a JSON line without message_type: ${l}`).toBe('string');
        return m;
      } catch (e) {
        throw new Error(`stdout is not JSON lines (${(e as Error).message}):\n${r.stdout.slice(0, 2000)}`);
      }
    });
}

/** The "summary" message a backup or restore --json ends with (its status lines before it are passed over). */
export function summaryLine(r: { stdout: string }): any {
  const lines = jsonLines(r);
  expect(lines.at(-1)?.message_type, `the last JSON line should be the summary:\n${r.stdout.slice(-2000)}`).toBe('summary');
  expect(lines.filter((m) => m.message_type === 'summary')).toHaveLength(1);
  return lines.at(-1);
}

/** Run with --json; expect success and one JSON document on stdout. */
export async function keepJson(args: string[], opts: RunOptions = {}): Promise<any> {
  const r = await keep([...args, '--json'], opts);
  if (r.code !== 0) throw new Error(`keep ${args.join(' ')} exited ${r.code}\nstderr: ${r.stderr}\nstdout: ${r.stdout.slice(0, 2000)}`);
  return parseOneJson(r);
}

/**
 * The stderr of a failed command: exactly one line, `keep: error: ...`, or
 * under --json restic's exit_error object carrying the exit code (given back
 * as that text line).
 */
export function errorLine(r: RunResult): string {
  expect(r.code, `expected failure, got exit ${r.code}; stdout: ${r.stdout.slice(0, 500)}`).not.toBe(0);
  const lines = r.stderr.split('\n').filter((l) => l.length > 0);
  expect(lines, `stderr should be one error line:\n${r.stderr}`).toHaveLength(1);
  if (lines[0].startsWith('{')) return `keep: error: ${jsonError(r)}`;
  expect(lines[0]).toMatch(/^keep: error: \S/);
  return lines[0];
}

/** The message of a command that failed under --json: stderr is one {"message_type":"exit_error","code":N,"message":"..."} line, N its exit code. */
export function jsonError(r: { code: number | null; stderr: string }): string {
  expect(r.stderr.endsWith('\n') && r.stderr.indexOf('\n') === r.stderr.length - 1, `stderr should be one line:\n${r.stderr}`).toBe(true);
  const e = JSON.parse(r.stderr);
  expect(e).toEqual({ message_type: 'exit_error', code: r.code, message: expect.any(String) });
  return e.message;
}

/** A fresh embedded repository (fast KDF) and the env that opens it. */
export async function initRepo(dir: string, password = 'correct horse battery staple'): Promise<{ repo: string; env: Record<string, string> }> {
  const repo = path.join(dir, 'repo');
  const env = { KEEP_REPO: repo, KEEP_PASSWORD: password };
  const init = await keepJson(['init', '--kdf-cost', '12'], { env });
  expect(init.repository).toMatch(/^[0-9a-f]{32}$/);
  return { repo, env };
}

/** Where a snapshot of absolute path `src` lands when restored into `target` (restic layout). */
export function restoredPath(target: string, src: string): string {
  return path.join(target, path.resolve(src));
}

// ---------------------------------------------------------------- tree generation

/** Deterministic pseudo-random bytes (fast; content is what matters, not quality). */
export function prng(seed: number, size: number): Buffer {
  const out = Buffer.allocUnsafe(size);
  let counter = 0;
  let off = 0;
  while (off < size) {
    const block = crypto.createHash('sha256').update(`${seed}:${counter++}`).digest();
    off += block.copy(out, off);
  }
  return out;
}

export function randomBytes(size: number): Buffer {
  return crypto.randomBytes(size);
}

/** Text that compresses well (repeated log-like lines). */
export function compressible(size: number): Buffer {
  const lines: string[] = [];
  let n = 0;
  let len = 0;
  while (len < size) {
    const l = `2026-11-23T10:00:${String(n % 60).padStart(2, '0')}Z INFO request ${n} served in ${n % 97} ms path=/api/v1/items/${n % 1000}\n`;
    lines.push(l);
    len += l.length;
    n++;
  }
  return Buffer.from(lines.join('')).subarray(0, size);
}

const B = (s: string | Buffer) => (typeof s === 'string' ? Buffer.from(s) : s);
/** Join path parts, any of which may be raw bytes (non-UTF-8 names). */
export function bjoin(...parts: (string | Buffer)[]): Buffer {
  const out: Buffer[] = [];
  parts.forEach((p, i) => {
    if (i > 0) out.push(Buffer.from('/'));
    out.push(B(p));
  });
  return Buffer.concat(out);
}

export const NON_UTF8_NAME = Buffer.from([0x62, 0x61, 0x64, 0xff, 0xfe]); // "bad\xff\xfe"

export interface TreeOptions {
  /** sizes of incompressible large files */
  largeFiles?: number[];
  /** size of one compressible large file (0: none) */
  compressibleSize?: number;
  /** number of small files, spread over nested directories */
  smallFiles?: number;
}

export interface TreeInfo {
  root: string;
  /** relative paths of the large files (incompressible ones first) */
  large: string[];
  /** regular file paths (each hardlink counts) and their total size: what a backup reports */
  files: number;
  bytes: number;
  /** bytes with each hardlinked inode counted once */
  uniqueBytes: number;
}

/**
 * A tree with every kind of entry a restore must reproduce: large random and
 * compressible files, many small files in nested directories, empty files and
 * directories, symlinks (relative, absolute, to a directory, dangling, with a
 * non-UTF-8 target), hardlink groups, non-UTF-8 / odd / Unicode-normalization
 * names, assorted modes, and mtimes with sub-millisecond parts.
 */
export function generateTree(root: string, opts: TreeOptions = {}): TreeInfo {
  const large: string[] = [];
  fs.mkdirSync(root, { recursive: true });
  const w = (rel: string | Buffer, data: Buffer | string, mode?: number) => {
    const p = bjoin(root, rel);
    fs.writeFileSync(p, data);
    if (mode !== undefined) fs.chmodSync(p, mode);
  };

  fs.mkdirSync(path.join(root, 'big'));
  (opts.largeFiles ?? []).forEach((size, i) => {
    w(`big/random-${i}.bin`, prng(1000 + i, size));
    large.push(`big/random-${i}.bin`);
  });
  if (opts.compressibleSize) {
    w('big/log.txt', compressible(opts.compressibleSize));
    large.push('big/log.txt');
  }

  // Many small files, 50 per directory, two levels deep.
  const small = opts.smallFiles ?? 0;
  for (let i = 0; i < small; i++) {
    const d = path.join(root, 'many', `d${Math.floor(i / 500)}`, `e${Math.floor(i / 50) % 10}`);
    if (i % 50 === 0) fs.mkdirSync(d, { recursive: true });
    fs.writeFileSync(path.join(d, `f${i}.txt`), `small file ${i}\n${'x'.repeat(i % 300)}`);
  }

  // Deep nesting, with a file at the bottom.
  let deep = path.join(root, 'deep');
  for (let i = 0; i < 24; i++) deep = path.join(deep, `level${i}`);
  fs.mkdirSync(deep, { recursive: true });
  fs.writeFileSync(path.join(deep, 'bottom.txt'), 'at the bottom\n');

  // Empty files and directories.
  w('empty.txt', '');
  fs.mkdirSync(path.join(root, 'empty-dir'));
  fs.mkdirSync(path.join(root, 'nested-empty', 'a', 'b'), { recursive: true });
  fs.mkdirSync(path.join(root, 'deep', 'empty-leaf'));
  w('deep/empty-too', '');

  // Names: not UTF-8 (file, dir, a file inside it), spaces, newline, leading dash, NFC vs NFD.
  w(NON_UTF8_NAME, 'the name of this file is not UTF-8\n');
  fs.mkdirSync(bjoin(root, Buffer.from([0x64, 0x69, 0x72, 0xe9])));
  w(bjoin(Buffer.from([0x64, 0x69, 0x72, 0xe9]), Buffer.from([0x80, 0x81, 0x2e, 0x74])), 'inside a Latin-1 named directory\n');
  w('with space.txt', 'spaces\n');
  w('new\nline', 'newline in the name\n');
  w('-dash', 'leading dash\n');
  w('caf\u00e9', 'NFC\n');
  w('cafe\u0301', 'NFD\n');
  w('日本語.txt', 'utf-8 name\n');

  // Modes.
  fs.mkdirSync(path.join(root, 'modes'));
  w('modes/private', 'secret\n', 0o600);
  w('modes/exec.sh', '#!/bin/sh\necho hi\n', 0o755);
  w('modes/readonly', 'read only\n', 0o444);
  w('modes/group', 'group\n', 0o640);
  w('modes/setgid', 'setgid\n', 0o2755);
  fs.mkdirSync(path.join(root, 'modes', 'private-dir'));
  w('modes/private-dir/inner', 'inner\n');
  fs.chmodSync(path.join(root, 'modes', 'private-dir'), 0o700);
  fs.mkdirSync(path.join(root, 'modes', 'sticky'));
  fs.chmodSync(path.join(root, 'modes', 'sticky'), 0o1777);
  fs.mkdirSync(path.join(root, 'modes', 'readonly-dir'));
  w('modes/readonly-dir/kept', 'inside a read-only dir\n');

  // Ownership (only root can give files away).
  if (process.getuid?.() === 0) {
    w('modes/owned', 'owned by someone else\n');
    fs.chownSync(path.join(root, 'modes', 'owned'), 1234, 5678);
  }

  // Symlinks.
  fs.mkdirSync(path.join(root, 'links'));
  fs.symlinkSync('../with space.txt', path.join(root, 'links', 'relative'));
  fs.symlinkSync(path.join(root, 'empty.txt'), path.join(root, 'links', 'absolute'));
  fs.symlinkSync('../deep', path.join(root, 'links', 'to-dir'));
  fs.symlinkSync('does/not/exist', path.join(root, 'links', 'dangling'));
  fs.symlinkSync(bjoin('..', NON_UTF8_NAME), bjoin(root, 'links', 'to-bad-name'));

  // Hardlinks: a group of three across directories and a pair.
  fs.mkdirSync(path.join(root, 'hard', 'sub'), { recursive: true });
  w('hard/one', 'shared content of a three-link group\n');
  fs.linkSync(path.join(root, 'hard', 'one'), path.join(root, 'hard', 'two'));
  fs.linkSync(path.join(root, 'hard', 'one'), path.join(root, 'hard', 'sub', 'three'));
  w('hard/pair-a', prng(7, 300 * 1024));
  fs.linkSync(path.join(root, 'hard', 'pair-a'), path.join(root, 'hard', 'sub', 'pair-b'));

  // Empty files can be hardlinked too.
  w('hard/empty-a', '');
  fs.linkSync(path.join(root, 'hard', 'empty-a'), path.join(root, 'hard', 'empty-b'));

  // The longest name most file systems allow.
  w('n'.repeat(251) + '.txt', 'long name\n');

  // Times far from now: the epoch (reproducible builds), before 1970, after 2038.
  fs.mkdirSync(path.join(root, 'times'));
  w('times/epoch', 'epoch\n');
  fs.utimesSync(path.join(root, 'times', 'epoch'), 0, 0);
  w('times/pre-1970', 'before the epoch\n');
  fs.utimesSync(path.join(root, 'times', 'pre-1970'), 0, -86_400.25);
  w('times/y2100', 'far future\n');
  fs.utimesSync(path.join(root, 'times', 'y2100'), 0, 4_102_444_800.5);

  // Sub-millisecond mtimes set explicitly (atime too), on files, a symlink and directories.
  fs.utimesSync(path.join(root, 'with space.txt'), 1_600_000_000.123456, 1_500_000_000.987654);
  fs.utimesSync(bjoin(root, NON_UTF8_NAME), 1_600_000_000, 1_234_567_890.000321);
  fs.lutimesSync(path.join(root, 'links', 'dangling'), 1_600_000_000, 1_400_000_000.5);
  fs.utimesSync(path.join(root, 'modes', 'readonly-dir', 'kept'), 1_600_000_000, 1_111_111_111.111);
  fs.chmodSync(path.join(root, 'modes', 'readonly-dir'), 0o555);
  fs.utimesSync(path.join(root, 'empty-dir'), 1_600_000_000, 1_300_000_000.25);
  fs.utimesSync(path.join(root, 'nested-empty', 'a'), 1_600_000_000, 1_300_000_001.75);

  const s = summarize(root);
  return { root, large, files: s.files, bytes: s.bytes, uniqueBytes: s.uniqueBytes };
}

/** Counts as a backup sees them: every regular file path (hardlinks too) and its size. */
export function summarize(root: string | Buffer): { files: number; dirs: number; symlinks: number; bytes: number; uniqueBytes: number } {
  const out = { files: 0, dirs: 0, symlinks: 0, bytes: 0, uniqueBytes: 0 };
  const inodes = new Set<string>();
  const walk = (dir: Buffer) => {
    for (const name of fs.readdirSync(dir, { encoding: 'buffer' })) {
      const p = bjoin(dir, name);
      const st = fs.lstatSync(p);
      if (st.isDirectory()) {
        out.dirs++;
        walk(p);
      } else if (st.isFile()) {
        out.files++;
        out.bytes += st.size;
        // Hardlinks share content: a backup needs to read it once.
        if (!inodes.has(`${st.dev}:${st.ino}`)) out.uniqueBytes += st.size;
        inodes.add(`${st.dev}:${st.ino}`);
      } else if (st.isSymbolicLink()) out.symlinks++;
    }
  };
  walk(B(root));
  return out;
}

// ---------------------------------------------------------------- tree comparison

export interface CompareOptions {
  /** compare uid/gid too (meaningful when the restore ran as root) */
  owner?: boolean;
  /** compare the two roots' own metadata (mode, mtime), not just their contents */
  rootMeta?: boolean;
}

const show = (rel: Buffer) => {
  const s = rel.toString();
  return Buffer.from(s).equals(rel) ? JSON.stringify(s) : `hex:${rel.toString('hex')}`;
};

function sameFile(a: Buffer, b: Buffer, size: number): boolean {
  const fa = fs.openSync(a, 'r');
  const fb = fs.openSync(b, 'r');
  try {
    const ba = Buffer.allocUnsafe(Math.min(size, 4 * MiB) || 1);
    const bb = Buffer.allocUnsafe(ba.length);
    for (let pos = 0; pos < size; ) {
      const n = fs.readSync(fa, ba, 0, ba.length, pos);
      const m = fs.readSync(fb, bb, 0, bb.length, pos);
      if (n !== m || n === 0 || !ba.subarray(0, n).equals(bb.subarray(0, n))) return false;
      pos += n;
    }
    return true;
  } finally {
    fs.closeSync(fa);
    fs.closeSync(fb);
  }
}

/**
 * Every difference between two trees, as readable lines (empty: identical).
 * Checks the set of names in every directory (so empty directories count),
 * type, content, mode, mtime to the millisecond, symlink targets and
 * hardlink groups (paths sharing an inode).
 */
export function compareTrees(a: string | Buffer, b: string | Buffer, opts: CompareOptions = {}): string[] {
  const diffs: string[] = [];
  const groupsA = new Map<string, Buffer[]>();
  const groupsB = new Map<string, Buffer[]>();
  const NS_PER_MS = 1_000_000n;

  const meta = (rel: Buffer, sa: fs.BigIntStats, sb: fs.BigIntStats) => {
    if (!sa.isSymbolicLink() && (sa.mode & 0o7777n) !== (sb.mode & 0o7777n)) diffs.push(`${show(rel)}: mode ${(sa.mode & 0o7777n).toString(8)} != ${(sb.mode & 0o7777n).toString(8)}`);
    // Restore sets times through a double (Node's API), good to about a microsecond: compare to the millisecond.
    const d = sa.mtimeNs - sb.mtimeNs;
    if (d >= NS_PER_MS || d <= -NS_PER_MS) diffs.push(`${show(rel)}: mtime ${sa.mtimeNs} != ${sb.mtimeNs} (ns)`);
    if (opts.owner && (sa.uid !== sb.uid || sa.gid !== sb.gid)) diffs.push(`${show(rel)}: owner ${sa.uid}:${sa.gid} != ${sb.uid}:${sb.gid}`);
  };

  const walk = (rel: Buffer) => {
    const da = bjoin(B(a), rel);
    const db = bjoin(B(b), rel);
    const na = new Map(fs.readdirSync(da, { encoding: 'buffer' }).map((n) => [n.toString('hex'), n]));
    const nb = new Map(fs.readdirSync(db, { encoding: 'buffer' }).map((n) => [n.toString('hex'), n]));
    for (const [k, n] of nb) if (!na.has(k)) diffs.push(`${show(rel.length ? bjoin(rel, n) : n)}: only in the restored tree`);
    for (const [k, name] of [...na].sort()) {
      const r = rel.length ? bjoin(rel, name) : name;
      if (!nb.has(k)) {
        diffs.push(`${show(r)}: missing from the restored tree`);
        continue;
      }
      const pa = bjoin(B(a), r);
      const pb = bjoin(B(b), r);
      const sa = fs.lstatSync(pa, { bigint: true });
      const sb = fs.lstatSync(pb, { bigint: true });
      const ta = sa.isDirectory() ? 'dir' : sa.isFile() ? 'file' : sa.isSymbolicLink() ? 'symlink' : 'special';
      const tb = sb.isDirectory() ? 'dir' : sb.isFile() ? 'file' : sb.isSymbolicLink() ? 'symlink' : 'special';
      if (ta !== tb) {
        diffs.push(`${show(r)}: type ${ta} != ${tb}`);
        continue;
      }
      meta(r, sa, sb);
      if (ta === 'dir') walk(r);
      else if (ta === 'symlink') {
        const la = fs.readlinkSync(pa, { encoding: 'buffer' });
        const lb = fs.readlinkSync(pb, { encoding: 'buffer' });
        if (!la.equals(lb)) diffs.push(`${show(r)}: symlink target ${show(la)} != ${show(lb)}`);
      } else if (ta === 'file') {
        if (sa.size !== sb.size) diffs.push(`${show(r)}: size ${sa.size} != ${sb.size}`);
        else if (!sameFile(pa, pb, Number(sa.size))) diffs.push(`${show(r)}: content differs`);
        if (sa.nlink > 1n) pushGroup(groupsA, `${sa.dev}:${sa.ino}`, r);
        if (sb.nlink > 1n) pushGroup(groupsB, `${sb.dev}:${sb.ino}`, r);
      }
    }
  };
  const pushGroup = (m: Map<string, Buffer[]>, k: string, r: Buffer) => {
    const g = m.get(k);
    if (g) g.push(r);
    else m.set(k, [r]);
  };

  if (opts.rootMeta) meta(Buffer.from('.'), fs.lstatSync(a, { bigint: true }), fs.lstatSync(b, { bigint: true }));
  walk(Buffer.alloc(0));

  // Hardlink groups: the same sets of paths share an inode on both sides.
  const norm = (m: Map<string, Buffer[]>) =>
    [...m.values()]
      .filter((g) => g.length > 1)
      .map((g) => g.map(show).sort().join(' = '))
      .sort();
  const ga = norm(groupsA);
  const gb = norm(groupsB);
  for (const g of ga) if (!gb.includes(g)) diffs.push(`hardlink group not restored: ${g}`);
  for (const g of gb) if (!ga.includes(g)) diffs.push(`unexpected hardlink group in the restored tree: ${g}`);
  return diffs;
}

/** Every file under `dir` (relative path -> stat summary and content hash), for "nothing changed" checks. */
export function fingerprint(dir: string, skip: (rel: string) => boolean = () => false): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const n of fs.readdirSync(d)) {
      const p = path.join(d, n);
      const rel = path.relative(dir, p);
      if (skip(rel)) continue;
      const st = fs.lstatSync(p);
      if (st.isDirectory()) walk(p);
      else out[rel] = `${st.size}:${crypto.createHash('sha256').update(fs.readFileSync(p)).digest('hex')}`;
    }
  };
  walk(dir);
  return out;
}

export function sha256(data: Buffer): string {
  return crypto.createHash('sha256').update(data).digest('hex');
}

// ---------------------------------------------------------------- pack files

export interface PackBlob {
  pack: string;
  id: string;
  /** 0 data, 1 tree */
  type: number;
  offset: number;
  length: number;
}

/** Every pack file under <repo>/packs/xx/*.pack. */
export function packFiles(repo: string): string[] {
  const dir = path.join(repo, 'packs');
  const out: string[] = [];
  for (const sub of fs.readdirSync(dir)) {
    const d = path.join(dir, sub);
    if (!fs.statSync(d).isDirectory()) continue;
    for (const n of fs.readdirSync(d)) if (n.endsWith('.pack')) out.push(path.join(d, n));
  }
  return out.sort();
}

/**
 * The blobs a pack lists in its trailer, read from the documented on-disk
 * format: N x 73-byte entries (32 id, 1 type, u32 BE offset, u32 BE length,
 * 32 hash), then u32 BE N, a 32-byte checksum and the magic "KEEPTRLR".
 */
export function packBlobs(file: string): PackBlob[] {
  const b = fs.readFileSync(file);
  expect(b.subarray(0, 8).toString()).toBe('KEEPPACK');
  expect(b.subarray(b.length - 8).toString()).toBe('KEEPTRLR');
  const n = b.readUInt32BE(b.length - 44);
  const start = b.length - 44 - n * 73;
  const out: PackBlob[] = [];
  for (let i = 0; i < n; i++) {
    const o = start + i * 73;
    out.push({ pack: file, id: b.subarray(o, o + 32).toString('hex'), type: b[o + 32], offset: b.readUInt32BE(o + 33), length: b.readUInt32BE(o + 37) });
  }
  return out;
}

/** Flip every bit of the byte at `pos` in `file`. */
export function flipByte(file: string, pos: number): void {
  const fd = fs.openSync(file, 'r+');
  try {
    const b = Buffer.alloc(1);
    fs.readSync(fd, b, 0, 1, pos);
    b[0] ^= 0xff;
    fs.writeSync(fd, b, 0, 1, pos);
  } finally {
    fs.closeSync(fd);
  }
}
