import type { ItemAction } from './overwrite.js';

/** One entry's outcome, as restic's verbose_status lines name it: the path in the snapshot, a file's size. */
export interface RestoreItem {
  action: ItemAction;
  item: string;
  size: number;
}

/**
 * A restore's result. The first fields are Keep's own (content written this
 * run); the snake_case ones after them are restic's restore summary, so a
 * script written for `restic restore --json` reads them unchanged.
 */
export interface RestoreStats {
  /** files whose content this run wrote, and their bytes */
  files: number;
  dirs: number;
  symlinks: number;
  hardlinks: number;
  bytes: number;
  chunks: number;
  duration_s: number;
  /** every file the snapshot (and --include / --exclude) selects, and their size */
  total_files: number;
  total_bytes: number;
  /** written (new or updated; hardlinks too), or with --dry-run, that would be */
  files_restored: number;
  bytes_restored: number;
  /** left as they were: content already the snapshot's, or kept by --overwrite */
  files_skipped: number;
  bytes_skipped: number;
  /** --delete: entries removed (a directory and each entry in it count one each) */
  files_deleted: number;
  dry_run: boolean;
  /** --verify: files re-read and compared with the snapshot, and those that differ ("path: why") */
  files_verified?: number;
  verify_failures?: string[];
}

export function emptyRestoreStats(dryRun: boolean): RestoreStats {
  return {
    files: 0,
    dirs: 0,
    symlinks: 0,
    hardlinks: 0,
    bytes: 0,
    chunks: 0,
    duration_s: 0,
    total_files: 0,
    total_bytes: 0,
    files_restored: 0,
    bytes_restored: 0,
    files_skipped: 0,
    bytes_skipped: 0,
    files_deleted: 0,
    dry_run: dryRun,
  };
}
