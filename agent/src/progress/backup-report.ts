import type { Snapshot } from '@keep/core';
import type { Archiver } from '../backup/archiver.js';
import type { UploadStats } from '../backup/uploader.js';
import { printWarning } from '../terminal/output.js';
import { Scanner } from './scanner.js';
import { percentDone, ProgressMode, secondsRemaining, StatusCounts, StatusReporter } from './status-reporter.js';

export interface BackupTotals {
  /** the backup's paths and selection, for the scanner (none for --stdin: no total) */
  paths?: string[];
  exclude?: ConstructorParameters<typeof Scanner>[1];
  /** the parent snapshot, whose size stands in for the total until the scan has one */
  parent?: Snapshot;
  /** the source is likely the parent's (backup/unchanged.ts): its size is the total, no scan */
  likelyUnchanged: boolean;
}

/**
 * A backup's progress (status-reporter.ts) and its warnings: the totals come
 * from a scan running alongside (restic's scanner) or, for a source likely
 * unchanged, from the parent snapshot's size; what is done from the archiver.
 */
export class BackupProgress {
  private archiver: Archiver | undefined;
  private scanner: Scanner | undefined;
  private errors = 0;
  private readonly reporter: StatusReporter;

  constructor(
    readonly mode: ProgressMode,
    private readonly totals: BackupTotals,
  ) {
    this.reporter = new StatusReporter(mode, () => this.counts(), statusMessage);
  }

  /** Start reporting on the walk of `archiver`. */
  start(archiver: Archiver): void {
    this.archiver = archiver;
    const t = this.totals;
    if (this.mode !== 'off' && t.paths && !(t.parent && t.likelyUnchanged)) this.scanner = new Scanner(t.paths, t.exclude).start();
    this.reporter.start();
  }

  /** A skipped or changed entry: a `keep: warning:` line, or with --json restic's "error" message on stderr. */
  warn(json: boolean, message: string, item?: string): void {
    this.errors++;
    this.reporter.interrupt();
    printWarning(json, message, 'archival', item);
  }

  stop(): void {
    this.scanner?.stop();
    this.reporter.stop();
  }

  counts(): StatusCounts {
    const a = this.archiver;
    const reading = a?.reading;
    const s = this.scanner;
    const p = this.totals.parent?.stats;
    // the scan's count once it is complete; until then the parent's size, or what the scan has found so far
    const total = s?.done ? { files: s.files, bytes: s.bytes } : p ? { files: Math.max(p.files, s?.files ?? 0), bytes: Math.max(p.bytes, s?.bytes ?? 0) } : s ? { files: s.files, bytes: s.bytes } : undefined;
    const done = {
      files: a?.stats.files ?? 0,
      bytes: (a?.stats.bytes ?? 0) + (reading && a ? a.stats.bytes_read - reading.readBefore : 0),
    };
    return {
      files_done: done.files,
      bytes_done: done.bytes,
      // never a total below what is done (files added since the scan passed them)
      total_files: total && Math.max(total.files, done.files),
      total_bytes: total && Math.max(total.bytes, done.bytes),
      current_files: reading ? [reading.path] : [],
      error_count: this.errors,
    };
  }
}

/** restic's backup "status" message. */
function statusMessage(c: StatusCounts, elapsedS: number) {
  const remaining = secondsRemaining(c, elapsedS);
  return {
    message_type: 'status' as const,
    seconds_elapsed: Math.floor(elapsedS),
    ...(remaining === undefined ? {} : { seconds_remaining: remaining }),
    percent_done: percentDone(c),
    total_files: c.total_files ?? 0,
    files_done: c.files_done,
    total_bytes: c.total_bytes ?? 0,
    bytes_done: c.bytes_done,
    error_count: c.error_count,
    current_files: c.current_files,
  };
}

/**
 * restic's backup "summary" message, with the fields Keep printed before it
 * (snapshot, bytes_read, bytes_sent, warnings, skipped...) kept alongside.
 */
export function backupSummary(snap: Snapshot, archiver: Archiver, upload: UploadStats, ended: Date, extra: Record<string, unknown>) {
  const st = snap.stats;
  return {
    message_type: 'summary' as const,
    files_new: st.files_new,
    files_changed: st.files_changed,
    files_unmodified: st.files_unmodified,
    ...archiver.dirCounts,
    data_blobs: upload.chunks_new,
    tree_blobs: upload.trees_new,
    data_added: upload.data_added,
    data_added_packed: upload.bytes_sent,
    total_files_processed: st.files,
    total_bytes_processed: st.bytes,
    total_duration: st.duration_s,
    backup_start: snap.time,
    backup_end: ended.toISOString(),
    snapshot_id: snap.id,
    // Keep's own fields
    snapshot: snap.id,
    source: snap.source,
    host: snap.host,
    time: snap.time,
    parent: snap.parent ?? null,
    dirs: st.dirs,
    bytes: st.bytes,
    bytes_read: st.bytes_read,
    bytes_sent: st.bytes_sent,
    chunks_new: st.chunks_new,
    duration_s: st.duration_s,
    skipped: archiver.skipped,
    ...extra,
  };
}
