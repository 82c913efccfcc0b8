import fs from 'node:fs';
import { Id, KeepError, TreeEntry, TreeNode } from '@keep/core';
import type { Unlocked } from '../repo/open.js';
import type { RestoreFilter } from '../selection/restore-filter.js';
import { compareContent } from './content-check.js';
import { existingEntry, ItemAction, OverwriteMode } from './overwrite.js';
import type { RestoreItem, RestoreStats } from './restore-stats.js';
import { deleteExtras, removeTree } from './target-delete.js';
import { EntryMeta, lstatIfAny, setExistingFileMeta } from './target-fs.js';

/** What the restorer tells this part: the rules of this restore, and where its counts and reports go. */
export interface TargetRules {
  repo: Unlocked;
  stats: RestoreStats;
  overwrite: OverwriteMode;
  delete: boolean;
  dryRun: boolean;
  isRoot: boolean;
  filter?: RestoreFilter;
  onItem?: (item: RestoreItem) => void;
  onWarning?: (message: string) => void;
}

/**
 * A restore meeting what its target already holds: --overwrite's decision for
 * each entry (overwrite.ts, content-check.ts), files left as they are
 * (counted skipped), --delete's removals (target-delete.ts). Nothing here
 * follows a symlink: entries are lstat'ed, files opened O_NOFOLLOW.
 */
export class ExistingEntries {
  constructor(private readonly r: TargetRules) {}

  item(action: ItemAction, rel: Buffer, size: number): void {
    this.r.onItem?.({ action, item: rel.toString(), size });
  }

  /**
   * How an entry meets what is already at its path (`present`: its directory
   * was there before, so the path may be taken): `new`, `replace` (after a
   * directory there was cleared), or `keep` / `unchanged` (left as it is).
   * Without `ids` (symlinks, later hardlinks) content is not compared.
   */
  async meet(e: TreeEntry, ids: Id[] | undefined, p: Buffer, rel: Buffer, present: boolean): Promise<'new' | 'replace' | 'keep' | 'unchanged'> {
    const st = present ? lstatIfAny(p) : undefined;
    if (!st) return 'new';
    let step = existingEntry(this.r.overwrite, e, st);
    if ((step === 'compare' || step === 'unchanged') && (!ids || !this.inPlaceSafe(e, st))) step = 'replace';
    if (step === 'compare') step = (await compareContent(p, ids!, e.size, this.r.repo.chunking, this.r.repo.keys)) === 'same' ? 'unchanged' : 'replace';
    if (step === 'replace' && st.isDirectory()) this.clearDir(p, rel);
    return step;
  }

  /**
   * Whether a file whose content matches may keep its inode and get the
   * snapshot's metadata in place. Not when it has another name (which may lie
   * outside the target), nor when its owner is not who the restore makes it
   * (as root, the snapshot's owner; else us): whoever owns it may hold it open
   * for writing, and a chown in place would hand them a file of another owner.
   * Such a file is rewritten: a new inode, as for a file that differs.
   */
  private inPlaceSafe(e: TreeEntry, st: fs.BigIntStats): boolean {
    if (st.nlink > 1n) return false;
    if (this.r.isRoot) return st.uid === BigInt(e.uid) && st.gid === BigInt(e.gid);
    return st.uid === BigInt(process.getuid?.() ?? -1);
  }

  /** A directory's place holds something else that --overwrite keeps: nothing below it is restored. */
  keepsNonDir(e: TreeEntry, p: Buffer, present: boolean): { keep: boolean; inside: boolean } {
    const st = present ? lstatIfAny(p) : undefined;
    if (st && !st.isDirectory() && existingEntry(this.r.overwrite, e, st) === 'keep') {
      this.r.onWarning?.(`${p.toString()}: not a directory in the target; kept (--overwrite ${this.r.overwrite}), so nothing below it is restored`);
      return { keep: true, inside: false };
    }
    return { keep: false, inside: !!st?.isDirectory() };
  }

  /** A file left as it is: its content is the snapshot's (metadata applied), or --overwrite keeps it. */
  skipped(e: TreeEntry, meta: EntryMeta, p: Buffer, rel: Buffer, unchanged: boolean): void {
    if (unchanged && !this.r.dryRun) setExistingFileMeta(p, meta, this.r.isRoot);
    this.r.stats.files_skipped++;
    this.r.stats.bytes_skipped += e.size;
    this.item(unchanged ? 'unchanged' : 'skipped', rel, e.size);
  }

  /** --delete in one directory that was there before: what the snapshot's `node` lacks goes. */
  deleteExtras(dest: Buffer, rel: Buffer, node: TreeNode, present: boolean): void {
    if (!this.r.delete || !present) return;
    const names = new Set(node.entries.map((e) => e.name.toString('latin1')));
    const filter = this.r.filter;
    deleteExtras(dest, rel, names, (r, isDir) => !filter || filter.choose(r, isDir).selected, this.r.dryRun, (r, size) => this.deleted(r, size));
  }

  /**
   * A directory stands where the snapshot has something else: with --delete
   * it goes with all it holds (restic's rule); otherwise only an empty one.
   */
  private clearDir(p: Buffer, rel: Buffer): void {
    const st = fs.lstatSync(p);
    if (this.r.delete) return removeTree(p, rel, st, this.r.dryRun, (r, size) => this.deleted(r, size));
    const refuse = `${p.toString()}: a directory stands where the snapshot has a file or symlink; --delete replaces it`;
    if (this.r.dryRun) return void (fs.readdirSync(p).length && this.r.onWarning?.(refuse));
    try {
      fs.rmdirSync(p);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOTEMPTY' || code === 'EEXIST') throw new KeepError('ALREADY_EXISTS', refuse);
      throw e;
    }
  }

  private deleted(rel: string, size: number): void {
    this.r.stats.files_deleted++;
    this.r.onItem?.({ action: 'deleted', item: rel, size });
  }
}
