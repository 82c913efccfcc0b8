import type { Snapshot } from '@keep/core';
import type { RestoreStats } from '../restore/restorer.js';
import { printJsonErrorLine } from '../cli/output.js';
import { percentDone, ProgressMode, StatusCounts, StatusReporter } from './status-reporter.js';

/**
 * A restore's progress (status-reporter.ts) and its warnings. The total is
 * the snapshot's size (its recorded file count and bytes) when everything is
 * restored; with --include/--exclude, until a walk of the selection tells
 * it (`setTotal`), the status shows what is done only.
 */
export class RestoreProgress {
  private done = { files: 0, bytes: 0, current: undefined as string | undefined };
  private total: { files: number; bytes: number } | undefined;
  private errors = 0;
  private readonly reporter: StatusReporter;

  constructor(
    readonly mode: ProgressMode,
    snap: Snapshot,
    filtered: boolean,
  ) {
    this.total = filtered ? undefined : { files: snap.stats.files, bytes: snap.stats.bytes };
    this.reporter = new StatusReporter(mode, () => this.counts(), statusMessage).start();
  }

  setTotal(files: number, bytes: number): void {
    this.total = { files, bytes };
  }

  /** The restorer's onProgress. */
  update(p: { files: number; bytes: number; current?: string }): void {
    this.done = { files: p.files, bytes: p.bytes, current: p.current };
  }

  warn(json: boolean, message: string): void {
    this.errors++;
    this.reporter.interrupt();
    if (json) printJsonErrorLine({ message_type: 'error', error: { message }, during: 'restore', item: message.split(': ')[0] });
    else process.stderr.write(`keep: warning: ${message}\n`);
  }

  stop(): void {
    this.reporter.stop();
  }

  elapsedS(): number {
    return this.reporter.elapsedS();
  }

  counts(): StatusCounts {
    const d = this.done;
    return {
      files_done: d.files,
      bytes_done: d.bytes,
      total_files: this.total && Math.max(this.total.files, d.files),
      total_bytes: this.total && Math.max(this.total.bytes, d.bytes),
      current_files: d.current ? [d.current] : [],
      error_count: this.errors,
    };
  }

  /** restic's restore "summary" message, with Keep's fields (snapshot, target, dirs, symlinks...) alongside. */
  summary(snap: Snapshot, target: string, st: RestoreStats) {
    const restored = st.files + st.hardlinks;
    return {
      message_type: 'summary' as const,
      seconds_elapsed: Math.floor(this.elapsedS()),
      total_files: Math.max(this.total?.files ?? 0, restored),
      files_restored: restored,
      files_skipped: 0,
      total_bytes: Math.max(this.total?.bytes ?? 0, st.bytes),
      bytes_restored: st.bytes,
      bytes_skipped: 0,
      // Keep's own fields (the restorer's counts: files written, hardlinks made, ...)
      snapshot: snap.id,
      source: snap.source,
      time: snap.time,
      target,
      ...st,
    };
  }
}

/** restic's restore "status" message. */
function statusMessage(c: StatusCounts, elapsedS: number) {
  return {
    message_type: 'status' as const,
    seconds_elapsed: Math.floor(elapsedS),
    percent_done: percentDone(c),
    total_files: c.total_files ?? 0,
    files_restored: c.files_done,
    files_skipped: 0,
    total_bytes: c.total_bytes ?? 0,
    bytes_restored: c.bytes_done,
  };
}
