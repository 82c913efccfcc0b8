import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Id, Snapshot } from '@keep/core';
import type { SourceView, UnchangedSubtree } from './archiver.js';
import { addFile, addSubdir, DirDigest, type Digested, LIMIT, lstatAnswer, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG, SourceDigests } from './source-digests.js';
import { cacheDir, writeCacheFile } from '../startup/cache-file.js';
import type { Unlocked } from '../repo/open.js';
import { mark } from '../startup/timing.js';

/**
 * Unchanged directories of a re-backup, known without reading their trees.
 *
 * The archiver (backup/archiver.ts) decides a directory is unchanged from
 * lstat, readdir and readlink answers alone (every field a tree node stores
 * comes from them), then reuses the parent's node. With the key open that
 * means fetching, decrypting and decoding every tree of the parent: on the
 * bench tree most of a re-backup's time after scrypt. Instead:
 *
 * - During a backup the archiver's questions go through a RecordingView. After
 *   a commit without warnings (nothing skipped, vanished or read at another
 *   size), the cache directory gets, for each directory stored, its tree id and
 *   a MAC (key derived from the master key) of the id and a digest of the
 *   answers about everything below it (names, lstat of each entry, symlink
 *   targets, subdirectories' digests): "a directory answering this is tree X".
 * - The next backup asks the source the same questions while scrypt runs
 *   (SourceDigests, backup/source-digests.ts, digesting as it walks). Once the key is open, where the parent's subtree is X and the
 *   MAC of X with the current digest equals the one remembered, the archiver
 *   takes X without reading it (the session protects the parent's trees).
 *
 * The walk could only have rebuilt X: same answers, same entries, same chunks
 * reused. Anything else - a file touched (its ctime moves), an answer the
 * archiver would warn about, a cache from another repository or damaged or
 * forged (the MAC needs the key), more than LIMIT answers - leaves the
 * directory to the archiver's walk. The cache holds tree ids (which keepd
 * stores anyway) and MACs: nothing secret. KEEP_NO_UNCHANGED_CACHE=1 turns it off.
 */

/** A SourceView that notes each answer, by question (a question asked twice counts once). */
export class RecordingView implements SourceView {
  /** 'l' + path -> lstat answer ('-' for nothing there), 'd' + dir -> names, 's' + path -> target; paths as latin1 */
  readonly answers = new Map<string, string>();
  private full = false;
  private readonly fields = new BigUint64Array(9);
  private readonly fieldBytes = Buffer.from(this.fields.buffer);

  lstat(p: Buffer, at = p): fs.BigIntStats | undefined {
    const st = lstatAnswer(at, this.fields);
    this.note('l', p, st ? this.fieldBytes.toString('latin1') : '-');
    return st;
  }

  readdir(dir: Buffer, at = dir): Buffer[] {
    const names = fs.readdirSync(at, { encoding: 'buffer' }).sort(Buffer.compare);
    this.note('d', dir, names.map((n) => n.toString('latin1')).join('/')); // names hold neither '/' nor NUL
    return names;
  }

  readlink(p: Buffer, at = p): Buffer {
    const target = fs.readlinkSync(at, { encoding: 'buffer' });
    this.note('s', p, target.toString('latin1'));
    return target;
  }

  /** Past LIMIT (each answer about 200-300 bytes of memory) nothing is kept (no digest for anything). */
  get complete(): boolean {
    return !this.full;
  }

  private note(op: string, p: Buffer, answer: string): void {
    if (this.full) return;
    if (this.answers.size >= LIMIT) {
      this.full = true;
      this.answers.clear();
      return;
    }
    this.answers.set(op + p.toString('latin1'), answer);
  }
}

/** Field `i` of an lstat answer (little-endian u64, as a number: what the archiver makes of it too). */
function field(answer: string, i: number): number {
  let v = 0;
  for (let k = 8 * i + 7; k >= 8 * i; k--) v = v * 256 + answer.charCodeAt(k);
  return v;
}

/**
 * Digest and counts of everything below `dir` from the answers noted (memoized
 * in `memo`), as SourceDigests computes them while walking; undefined when an
 * answer is missing or the archiver would not store it as answered (nothing
 * there, special files). Counts as the archiver counts: every file and
 * directory entry, file sizes (hardlinked files apart, by inode).
 */
function digestDir(answers: Map<string, string>, dir: string, memo: Map<string, Digested | null>, depth = 0, writers: DirDigest[] = []): Digested | undefined {
  const known = memo.get(dir);
  if (known !== undefined) return known ?? undefined;
  const names = answers.get(`d${dir}`);
  let r: Digested | null = null;
  if (names !== undefined) {
    const w = (writers[depth] ??= new DirDigest());
    w.begin(names);
    r = { digest: Buffer.alloc(0), files: 0, dirs: 0, bytes: 0, hardlinks: [] };
    for (const name of names === '' ? [] : names.split('/')) {
      const p = `${dir}/${name}`;
      const a = answers.get(`l${p}`);
      if (a === undefined || a === '-') return void memo.set(dir, null);
      w.entry(name, a);
      const kind = field(a, 0) & S_IFMT;
      if (kind === S_IFREG) addFile(r, field(a, 1), field(a, 6), field(a, 5), field(a, 4));
      else if (kind === S_IFDIR) {
        const sub = digestDir(answers, p, memo, depth + 1, writers);
        if (!sub) return void memo.set(dir, null);
        addSubdir(w, r, sub);
      } else if (kind === S_IFLNK) {
        const t = answers.get(`s${p}`);
        if (t === undefined) return void memo.set(dir, null);
        w.target(t);
      } else return void memo.set(dir, null); // a special file: the archiver skips it, with a warning
    }
    r.digest = w.digest();
  }
  memo.set(dir, r);
  return r ?? undefined;
}

/**
 * The cache file: "keepunc1", the snapshot the entries were remembered for
 * (16 bytes), then entries of 32-byte tree id and 32-byte MAC, sorted by id.
 */
const MAGIC = Buffer.from('keepunc1');
const HEAD = MAGIC.length + 16;
const ENTRY = 64;
/** Entries kept at most (6.4 MB). */
const MAX_ENTRIES = 100_000;

export class UnchangedSource {
  private readonly pre: SourceDigests;
  private readonly walked: Promise<void>;
  private stopped = false;
  private key?: Buffer;
  /** directories the archiver walked (path -> tree id), and those it took as known (path -> id, digest) */
  private readonly stored = new Map<string, Id>();
  private readonly reused = new Map<string, Digested & { id: Id }>();

  private constructor(
    private readonly file: string,
    paths: string[],
    private readonly cache: Buffer | undefined,
  ) {
    this.stopped = cache === undefined; // nothing remembered: nothing to compare answers with
    // digests too, before the key is open (keyless): then only the MACs remain
    this.pre = new SourceDigests(() => this.stopped);
    this.walked = this.pre.walk(paths).then(() => {
      mark('unchanged: source walked');
    });
  }

  /** Start asking the source the archiver's questions (first thing: it runs while scrypt does). */
  static start(paths: string[], location: string, source: string, env: NodeJS.ProcessEnv = process.env): UnchangedSource {
    const file = path.join(cacheDir(env), `unchanged-${crypto.createHash('sha256').update(`${location}\0${source}`).digest('hex').slice(0, 24)}.bin`);
    return new UnchangedSource(file, paths.map((p) => path.resolve(p)), env.KEEP_NO_UNCHANGED_CACHE ? undefined : readCache(file));
  }

  /**
   * Whether the cache was written for `parent` (keyless: the MACs are checked
   * once the key is open). When it was not, the source walk stops: its answers
   * would most likely have nothing to be compared with.
   */
  expects(parent: Snapshot | undefined): boolean {
    const hit = parent !== undefined && this.cache !== undefined && this.cache.subarray(MAGIC.length, HEAD).toString('hex') === parent.id;
    if (!hit && !this.stopped) {
      this.stopped = true;
      this.walked.then(() => this.pre.clear()); // the memory, for a backup that may need it
    }
    return hit;
  }

  /** The key is open: wait for the source walk (the archiver would ask the same), and derive the MAC key. */
  async unlocked(repo: Unlocked): Promise<void> {
    this.key = Buffer.from(crypto.hkdfSync('sha256', repo.master, Buffer.from(repo.config.id), 'keep/v1/unchanged-dir', 32));
    if (!this.stopped) await this.walked;
    this.stopped = true;
  }

  /** Told each tree the archiver will read after all (a directory that changed, or was not remembered). */
  onMiss?: (id: Id) => void;

  /** For the archiver: `dir`'s subtree, when it answers now what it answered when tree `id` was stored. */
  known(dir: Buffer, id: Id): UnchangedSubtree | undefined {
    const d = this.check(dir, id);
    if (!d) this.onMiss?.(id);
    return d;
  }

  private check(dir: Buffer, id: Id): UnchangedSubtree | undefined {
    if (!this.cache || !this.key || !this.pre.complete) return undefined;
    const tag = findTag(this.cache, id);
    if (!tag) return undefined;
    const d = this.pre.digests.get(dir.toString('latin1'));
    if (!d) return undefined;
    const mac = this.mac(id, d.digest);
    if (!crypto.timingSafeEqual(mac, tag)) return undefined;
    this.reused.set(dir.toString('latin1'), { ...d, id });
    return { files: d.files, dirs: d.dirs, bytes: d.bytes, hardlinks: d.hardlinks };
  }

  /** Directories the archiver took without reading them. */
  get taken(): number {
    return this.reused.size;
  }

  /** For the archiver: it stored `dir` as tree `id` (from the answers of the view it was given). */
  storedDir(dir: Buffer, id: Id): void {
    this.stored.set(dir.toString('latin1'), id);
  }

  /** After a commit without warnings: remember every directory of `snap` whose answers are all known. */
  remember(snap: Snapshot, view: RecordingView): void {
    if (!this.key || !view.complete || process.env.KEEP_NO_UNCHANGED_CACHE) return;
    // the walk asked nothing below the directories it took as known: their digests are the source walk's
    const memo = new Map<string, Digested | null>(this.reused);
    const entries = [...this.reused.values()].map((d) => ({ id: d.id, tag: this.mac(d.id, d.digest) }));
    for (const [dir, id] of this.stored) {
      const d = digestDir(view.answers, dir, memo);
      if (d) entries.push({ id, tag: this.mac(id, d.digest) });
    }
    // What was remembered before still holds (a MAC says "a directory answering this is tree X", and
    // X is only ever taken where the parent has it): kept, so that directories inside one taken whole
    // stay known, up to a bound.
    for (let o = HEAD; this.cache && o < this.cache.length && entries.length < MAX_ENTRIES; o += ENTRY) {
      entries.push({ id: this.cache.subarray(o, o + 32), tag: this.cache.subarray(o + 32, o + ENTRY) });
    }
    entries.sort((a, b) => Buffer.compare(a.id, b.id));
    const out = Buffer.alloc(HEAD + entries.length * ENTRY);
    MAGIC.copy(out);
    Buffer.from(snap.id, 'hex').copy(out, MAGIC.length, 0, 16);
    let n = 0;
    for (const e of entries) {
      if (n > 0 && e.id.equals(out.subarray(HEAD + (n - 1) * ENTRY, HEAD + (n - 1) * ENTRY + 32))) continue; // identical directories share a tree
      e.id.copy(out, HEAD + n * ENTRY);
      e.tag.copy(out, HEAD + n * ENTRY + 32);
      n++;
    }
    // (unwritable: the next backup reads its trees, nothing else)
    writeCacheFile(this.file, out.subarray(0, HEAD + n * ENTRY));
  }

  private mac(id: Id, digest: Buffer): Buffer {
    return crypto.createHmac('sha256', this.key!).update(id).update(digest).digest();
  }
}

function readCache(file: string): Buffer | undefined {
  try {
    const b = fs.readFileSync(file);
    return b.length >= HEAD && (b.length - HEAD) % ENTRY === 0 && b.subarray(0, MAGIC.length).equals(MAGIC) ? b : undefined;
  } catch {
    return undefined; // none yet, or unreadable
  }
}

/** The MAC remembered for tree `id` (binary search over the sorted entries). */
function findTag(cache: Buffer, id: Id): Buffer | undefined {
  let lo = 0;
  let hi = (cache.length - HEAD) / ENTRY;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    const o = HEAD + mid * ENTRY;
    const c = Buffer.compare(cache.subarray(o, o + 32), id);
    if (c === 0) return cache.subarray(o + 32, o + ENTRY);
    if (c < 0) lo = mid + 1;
    else hi = mid;
  }
  return undefined;
}
