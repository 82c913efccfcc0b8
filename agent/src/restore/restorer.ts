import fs from 'node:fs';
import path from 'node:path';
import { fileChunks, Id, TreeEntry, TreeNode } from '@keep/core';
import type { Unlocked } from '../repo/open.js';
import { checkNames, entryChoices } from './entry-choices.js';
import { ExistingEntries } from './existing-entries.js';
import { namedError } from './named-error.js';
import { pauseWithPartial, RestoreInterrupted } from './restore-interrupt.js';
import { planRestore, RestorePlan } from './restore-plan.js';
import type { OverwriteMode } from './overwrite.js';
import type { RestoreOptions } from './restore-options.js';
import { emptyRestoreStats, RestoreStats } from './restore-stats.js';
import { createLink, createSymlink, EntryMeta, ensureDir, sameFile, setDirMeta } from './target-fs.js';
import { chunkWindow, LARGE_FILES, LARGE_WAITING, SMALL_BYTES_AHEAD, SMALL_FILE, SMALL_FILES_AHEAD } from './restore-budget.js';
import { mark } from '../startup/timing.js';
import { TreeReader } from '../tree/tree-reader.js';
import { verifyTarget } from './verifier.js';
import { RestorePool, restoreWorkerCount } from './worker-pool.js';

export type { RestoreOptions, RestoreStats };

interface Linked {
  path: Buffer;
  done: Promise<void>;
  written: boolean;
}

/**
 * Where a written file is reported once done: its path in the snapshot (its
 * directory's and its name: joined only when an item is reported or a large
 * file is abandoned), and whether it replaced one.
 */
interface Report {
  dir: Buffer;
  name: Buffer;
  /** created with the snapshot's owner already (see `plain` in dir()): no chown */
  owned: boolean;
  action: 'restored' | 'updated';
}

const SEP = Buffer.from('/');
const relOf = (r: Report) => Buffer.concat([r.dir, SEP, r.name]);
const noop = () => undefined;

const mtimeOf = (e: TreeEntry) => e.mtime[0] + e.mtime[1] / 1e9;
const metaOf = (e: TreeEntry): EntryMeta => ({ mode: e.mode, uid: e.uid, gid: e.gid, mtime: mtimeOf(e) });

/**
 * Writes a snapshot's tree into a target directory: contents (every chunk
 * decrypted on a worker and checked against its id), modes, owners where
 * permitted, mtimes, symlinks and hardlinks.
 *
 * The main thread walks the trees in order (subtrees requested a level
 * ahead), creates directories and symlinks, and asks the repository for the
 * blobs of the files ahead, up to a bound in bytes and files; the repository
 * connection batches those asks. Files are written by the restore workers
 * (worker-pool.ts): small ones in batches, large ones chunk by chunk on one
 * worker each. Directory metadata is applied last, deepest first, since
 * writing into a directory changes its mtime. target-fs.ts holds the rules
 * that keep every step from following a symlink planted in the target.
 *
 * A target may hold entries already (restic's rule: restore into it, and
 * --overwrite decides). Where a directory was there before, each path is
 * lstat'ed and existing-entries.ts decides; in a directory this restore made,
 * nothing is looked up. A dry run walks and decides the same way (reading
 * existing files to compare) and writes nothing; --verify re-reads at the end.
 */
export class Restorer {
  readonly stats: RestoreStats;
  private readonly trees: TreeReader;
  private readonly dryRun: boolean;
  private readonly overwrite: OverwriteMode;
  private workers: RestorePool | undefined;
  private readonly existing: ExistingEntries;
  /** files being written (and hardlinks waiting for theirs); `settle` wakes run() when none is left */
  private inFlight = 0;
  private settle: (() => void) | undefined;
  private failure: Error | undefined;
  private readonly dirMeta: { p: Buffer; m: EntryMeta }[] = [];
  /** first restored path of each hardlinked inode, when its content is done, and whether this run (re)writes it */
  private readonly linked = new Map<string, Linked>();
  private readonly isRoot = process.getuid?.() === 0;
  private readonly euid = process.geteuid?.() ?? -1;
  private readonly egid = process.getegid?.() ?? -1;
  private smallBytes = 0;
  private smallFiles = 0;
  private largeFiles = 0;
  /** large files waiting for a slot, in walk order */
  private readonly largeQueue: (() => void)[] = [];
  /** the walker, waiting for room (in the small-file budget or the large-file queue) */
  private wake: (() => void) | undefined;
  /** with the `plan` option: the files and bytes selected, counted before the first write */
  plan: RestorePlan | undefined;
  /** bytes of large files written so far and not yet counted (their files are not finished) */
  partialBytes = 0;
  /** large files begun and abandoned (interrupted or failed), by their path in the snapshot: removed, never left under their name */
  readonly partialRemoved: string[] = [];

  constructor(
    private readonly repo: Unlocked,
    private readonly opts: RestoreOptions,
  ) {
    this.trees = new TreeReader(repo);
    this.dryRun = !!opts.dryRun;
    this.overwrite = opts.overwrite ?? 'always';
    this.stats = emptyRestoreStats(this.dryRun);
    this.existing = new ExistingEntries({ repo, stats: this.stats, overwrite: this.overwrite, delete: !!opts.delete, dryRun: this.dryRun, isRoot: this.isRoot, filter: opts.filter, onItem: opts.onItem, onWarning: opts.onWarning });
  }

  async run(root: Id, started: number, now: () => number): Promise<RestoreStats> {
    const target = Buffer.from(path.resolve(this.opts.target));
    // The target itself is the caller's to name: symlinks on the way to it are followed.
    let present: boolean;
    if (this.dryRun) {
      present = fs.statSync(target, { throwIfNoEntry: false })?.isDirectory() ?? false;
    } else {
      // mkdir names the first directory it made: none when the target was there (and may hold entries).
      present = (await fs.promises.mkdir(target, { recursive: true })) === undefined;
      this.workers = this.opts.pool ?? new RestorePool(restoreWorkerCount(), this.isRoot);
      this.workers.unlock(this.repo.master, this.repo.chunking.max);
    }
    try {
      try {
        if (this.opts.plan) this.opts.onPlan?.((this.plan = await planRestore(this.trees, root, this.opts.filter)));
        // Whether a file created in the target (or a directory made below it) gets our group: not set-group-ID, and ours.
        const st = this.dryRun ? undefined : fs.statSync(target);
        const plain = !!st && st.gid === this.egid && (st.mode & 0o2000) === 0;
        await this.dir(root, target, Buffer.alloc(0), noop, present, plain);
        mark('restore: walk done');
      } catch (e) {
        this.failure ??= e as Error;
      }
      if (this.inFlight > 0) await new Promise<void>((r) => (this.settle = r));
      if (this.failure) throw this.failure;
      mark('restore: files written');
      for (let i = this.dirMeta.length - 1; i >= 0; i--) setDirMeta(this.dirMeta[i].p, this.dirMeta[i].m, this.isRoot);
    } finally {
      await (this.workers ?? this.opts.pool)?.close();
    }
    if (this.opts.verify && !this.dryRun) {
      const v = await verifyTarget(this.repo, this.trees, root, target, this.opts.filter, (m) => this.opts.onWarning?.(`verify: ${m}`));
      this.stats.files_verified = v.verified;
      this.stats.verify_failures = v.failures;
    }
    this.stats.duration_s = (now() - started) / 1000;
    return this.stats;
  }

  /**
   * Stop as soon as what is in flight settles: no new file is started, small
   * files already handed to a worker are completed, large files being written
   * are abandoned (their partial names removed). run() then throws
   * RestoreInterrupted; `stats`, `plan` and `partialRemoved` say what is left.
   */
  interrupt(): void {
    this.failure ??= new RestoreInterrupted();
    this.freed();
  }

  /**
   * `made` creates `dest` (and what leads to it) when it is only on the way to
   * selected entries; `present`: `dest` was a directory before this restore,
   * so its entries may meet ones already there. `plain`: a file created in `dest` gets our group (the
   * target's is ours, not set-group-ID, and this restore made every directory below it), so no fchown
   * when the snapshot's owner is us.
   */
  private async dir(id: Id, dest: Buffer, rel: Buffer, made: () => void, present: boolean, plain: boolean): Promise<void> {
    const node = await this.trees.read(id);
    if (rel.length === 0) mark('restore: root tree read');
    checkNames(node);
    const choices = entryChoices(node, rel, this.opts.filter);
    this.existing.deleteExtras(dest, rel, node, present);
    // Ask for the subtrees now: they arrive while this directory's files are fetched.
    node.entries.forEach((e, i) => {
      if (e.type === 'dir' && choices[i].descend) this.trees.read(TreeReader.subtree(node, e)).catch(noop);
    });
    for (let i = 0; i < node.entries.length; i++) {
      const e = node.entries[i];
      if (this.failure) throw this.failure;
      const { selected, descend } = choices[i];
      if (!selected && !descend) continue;
      const p = Buffer.concat([dest, SEP, e.name]);
      if (selected) made();
      if (e.type !== 'dir' && e.type !== 'symlink') {
        // (most files start without a wait: no promise for the walk to await)
        const waiting = this.file(node, e, p, rel, present, plain);
        if (waiting) await waiting;
        continue;
      }
      const r = Buffer.concat([rel, SEP, e.name]);
      if (e.type === 'dir') {
        const { keep, inside } = this.existing.keepsNonDir(e, p, present);
        if (keep) continue;
        if (selected) {
          // Private until its own mode is applied at the end: nobody else can add entries meanwhile.
          if (!this.dryRun) ensureDir(p, 0o700);
          this.stats.dirs++;
          await this.dir(TreeReader.subtree(node, e), p, r, noop, inside, plain && !inside);
          if (!this.dryRun) this.dirMeta.push({ p, m: metaOf(e) });
        } else {
          // Only on the way to selected entries: made (without its metadata) when the first of them is.
          let exists = false;
          const makeDir = () => {
            if (exists) return;
            made();
            if (!this.dryRun) ensureDir(p, 0o777);
            this.stats.dirs++;
            exists = true;
          };
          await this.dir(TreeReader.subtree(node, e), p, r, makeDir, inside, plain && !inside);
        }
      } else if (e.type === 'symlink') {
        const step = await this.existing.meet(e, undefined, p, r, present);
        if (step === 'keep' || step === 'unchanged') {
          this.existing.item('skipped', r, 0);
          continue;
        }
        if (!this.dryRun) createSymlink(e.target!, p, metaOf(e), this.isRoot);
        this.stats.symlinks++;
        this.existing.item('restored', r, 0);
      }
    }
  }

  /** A file's writing (or a hardlink's wait for its first name), which run() waits for; the first failure ends the restore. */
  private track(t: Promise<void>): void {
    this.inFlight++;
    const settled = () => {
      if (--this.inFlight === 0 && this.settle) this.settle();
    };
    t.then(settled, (err: Error) => {
      this.failure ??= err;
      settled();
    });
  }

  /**
   * Start restoring a file; a promise only when the walk must wait (for room, or to look at a present
   * directory's entry). Per-file promises and suspended calls outlived the young generation, promoted.
   */
  private file(node: TreeNode, e: TreeEntry, p: Buffer, dir: Buffer, present: boolean, plain: boolean): Promise<void> | undefined {
    this.stats.total_files++;
    this.stats.total_bytes += e.size;
    const ids = fileChunks(node, e);
    const key = e.nlink > 1 ? `${e.dev}:${e.ino}` : undefined;
    const first = key ? this.linked.get(key) : undefined;
    const owned = plain && e.uid === this.euid && e.gid === this.egid;
    if (!first && !present) return this.written(ids, e, p, { dir, name: e.name, action: 'restored', owned }, key);
    const rel = Buffer.concat([dir, SEP, e.name]);
    if (first) return this.link(e, first, p, rel, present);
    return this.existing.meet(e, ids, p, rel, present).then((step) => {
      if (step === 'keep' || step === 'unchanged') {
        this.existing.skipped(e, metaOf(e), p, rel, step === 'unchanged');
        // Later links of this inode link to what stays here.
        if (key) this.linked.set(key, { path: p, done: Promise.resolve(), written: false });
        return;
      }
      return this.written(ids, e, p, { dir, name: e.name, action: step === 'new' ? 'restored' : 'updated', owned }, key);
    });
  }

  /** A file (re)written here, or counted as such by a dry run. `key`: its inode's, when hardlinked. */
  private written(ids: Id[], e: TreeEntry, p: Buffer, report: Report, key: string | undefined): Promise<void> | undefined {
    if (this.dryRun) {
      if (key) this.linked.set(key, { path: p, done: Promise.resolve(), written: true });
      this.restored(e.size, report);
      return;
    }
    if (!key) return this.content(ids, e, p, report);
    let resolve!: () => void;
    this.linked.set(key, { path: p, done: new Promise((r) => (resolve = r)), written: true });
    return this.content(ids, e, p, report, resolve);
  }

  /**
   * A later name of a hardlinked inode: linked to the first once that is
   * written. Its content is not compared: what decides is whether it is that
   * file already (the same inode as a first name this run leaves in place).
   */
  private async link(e: TreeEntry, first: Linked, p: Buffer, rel: Buffer, present: boolean): Promise<void> {
    const step = await this.existing.meet(e, undefined, p, rel, present);
    if (step === 'keep') return this.existing.skipped(e, metaOf(e), p, rel, false);
    this.track(
      first.done.then(() => {
        if (this.failure) return;
        if (step !== 'new' && !first.written && sameFile(first.path, p)) return this.existing.skipped(e, metaOf(e), p, rel, true);
        if (!this.dryRun) createLink(first.path, p);
        this.stats.hardlinks++;
        this.restored(e.size);
        this.existing.item(step === 'new' ? 'restored' : 'updated', rel, e.size);
      }),
    );
  }

  /** Counted as written (a hardlink, or what a dry run would write). */
  private restored(size: number, report?: Report): void {
    this.stats.files_restored++;
    this.stats.bytes_restored += size;
    if (report && this.opts.onItem) this.existing.item(report.action, relOf(report), size);
  }

  /** Start writing a file's content; returns a promise only when the walk must wait for room first (never for the write). */
  private content(ids: Id[], e: TreeEntry, p: Buffer, report: Report, done?: () => void): Promise<void> | undefined {
    const small = ids.length <= 1 && e.size <= SMALL_FILE;
    const full = small ? (this.smallBytes > 0 && this.smallBytes + e.size > SMALL_BYTES_AHEAD) || this.smallFiles >= SMALL_FILES_AHEAD : this.largeQueue.length >= LARGE_WAITING;
    if (full) return this.room().then(() => this.content(ids, e, p, report, done));
    if (this.failure) throw this.failure;
    const t = small ? this.smallFile(ids, e, p, report) : this.largeSlot().then(() => this.largeFile(ids, e, p, report));
    this.track(done ? t.finally(done) : t);
    return undefined;
  }

  /** Resolves when a large file may start (it then holds one of LARGE_FILES slots). */
  private largeSlot(): Promise<void> {
    if (this.largeFiles < LARGE_FILES) {
      this.largeFiles++;
      return Promise.resolve();
    }
    return new Promise((r) => this.largeQueue.push(r));
  }

  /** A large file is done: its slot goes to the next waiting one. */
  private largeDone(): void {
    const next = this.largeQueue.shift();
    if (next) next();
    else this.largeFiles--;
    this.freed();
  }

  private room(): Promise<void> {
    return new Promise((r) => (this.wake = r));
  }

  private freed(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  private async smallFile(ids: Id[], e: TreeEntry, p: Buffer, report: Report): Promise<void> {
    this.smallBytes += e.size;
    this.smallFiles++;
    try {
      const stored = ids.length ? await this.repo.conn.getBlob(ids[0]) : undefined;
      if (this.failure) return;
      const size = await this.workers!.writeFile({ path: p, id: ids[0], stored, size: e.size, mode: e.mode, uid: e.uid, gid: e.gid, mtime: mtimeOf(e), owned: report.owned });
      if (this.stats.files === 0) mark('restore: first file written');
      this.finished(size, ids.length, p, report);
    } catch (err) {
      throw namedError(p, err);
    } finally {
      this.smallBytes -= e.size;
      this.smallFiles--;
      this.freed();
    }
  }

  private async largeFile(ids: Id[], e: TreeEntry, p: Buffer, report: Report): Promise<void> {
    if (this.failure) return this.largeDone();
    const w = this.workers!.largeFile(p);
    let ended = false;
    // This file's written chunks, in the progress until it is counted whole (finished) or given up.
    let settled = false;
    let fileBytes = 0;
    const count = (n: number) => void (!settled && ((fileBytes += n), (this.partialBytes += n)));
    try {
      const fetches: (Promise<Buffer> | undefined)[] = [];
      const request = (i: number) => {
        const f = this.repo.conn.getBlob(ids[i]);
        // Awaited in order below; one failing first must not be an unhandled rejection, which kills the process.
        f.catch(noop);
        fetches[i] = f;
      };
      const written: Promise<number>[] = [];
      const window = chunkWindow(e.size, ids.length);
      for (let i = 0; i < Math.min(window, ids.length); i++) request(i);
      for (let i = 0; i < ids.length; i++) {
        if (this.failure) throw this.failure;
        const stored = await fetches[i]!;
        fetches[i] = undefined;
        written[i] = w.chunk(ids[i], stored);
        written[i].then(count, noop);
        if (i === 0 && process.env.KEEP_TEST_PAUSE_AT) await pauseWithPartial(written[0]);
        if (i + window < ids.length) {
          // The window bounds chunks held here and queued on the worker, should the disk be slower than the network.
          if (i > 0) await written[i - 1];
          request(i + window);
        }
      }
      await Promise.all(written);
      // Interrupted after the last chunk: still not published (an interrupt leaves no file it did not finish before it).
      if (this.failure) throw this.failure;
      ended = true;
      const size = await w.end(metaOf(e), e.size, report.owned);
      this.finished(size, ids.length, p, report);
    } catch (err) {
      throw namedError(p, err);
    } finally {
      settled = true;
      this.partialBytes -= fileBytes;
      if (!ended) {
        await w.abort();
        this.partialRemoved.push(relOf(report).toString());
      }
      this.largeDone();
    }
  }

  private finished(bytes: number, chunks: number, p: Buffer, report: Report): void {
    this.stats.files++;
    this.stats.bytes += bytes;
    this.stats.chunks += chunks;
    this.restored(bytes, report);
    this.opts.onProgress?.({ files: this.stats.files, bytes: this.stats.bytes, current: p });
  }
}

export type { TreeNode };
// (stream-wire.test.ts checks the window)
export { chunkWindow, LARGE_AHEAD_BYTES } from './restore-budget.js';
