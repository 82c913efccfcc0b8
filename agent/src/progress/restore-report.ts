import type { Snapshot } from '@keep/core';
import { pathText } from '../restore/named-error.js';
import type { RestoreIncomplete } from '../restore/restore-interrupt.js';
import type { RestorePlan } from '../restore/restore-plan.js';
import type { RestoreStats } from '../restore/restore-stats.js';
import { printWarning } from '../terminal/output.js';
import { percentDone, ProgressMode, secondsRemaining, StatusCounts, StatusReporter } from './status-reporter.js';

/** Beyond the counts: the total counted from the trees before writing, and bytes of files still being written. */
export interface RestoreUnderway {
  plan?: RestorePlan;
  partialBytes: number;
}

/**
 * A restore's progress (status-reporter.ts) and its warnings, read from the
 * restorer's own counts (restore/restore-stats.ts: restic's fields). The
 * total is the restorer's plan, counted from the snapshot's trees before
 * writing (restore/restore-plan.ts); without one, the snapshot's recorded size
 * when everything is restored, or with --include/--exclude, what the walk has
 * selected so far. Bytes include large files' chunks as they are written, so
 * rate and ETA move within a big file.
 */
export class RestoreProgress {
  private stats: (() => RestoreStats) | undefined;
  private underway: (() => RestoreUnderway) | undefined;
  private current: Uint8Array | undefined;
  private readonly whole: { files: number; bytes: number } | undefined;
  private errors = 0;
  private readonly reporter: StatusReporter;

  constructor(
    readonly mode: ProgressMode,
    snap: Snapshot,
    filtered: boolean,
  ) {
    this.whole = filtered ? undefined : { files: snap.stats.files, bytes: snap.stats.bytes };
    this.reporter = new StatusReporter(mode, () => this.counts(), (c, elapsedS) => this.statusMessage(c, elapsedS));
  }

  /** Start reporting on a restorer's counts. */
  start(stats: () => RestoreStats, underway?: () => RestoreUnderway): void {
    this.stats = stats;
    this.underway = underway;
    this.reporter.start();
  }

  /** A restore that completed: its last status (100%) is shown, then reporting stops. */
  finish(): void {
    this.reporter.finish();
  }

  /** The restorer's onProgress: the file it finished last (its path's bytes, made a string when shown). */
  update(p: { current?: Uint8Array }): void {
    this.current = p.current;
  }

  /** Clear the terminal line before a line of output (restore -v's items). */
  interrupt(): void {
    this.reporter.interrupt();
  }

  /** A restore warning: a `keep: warning:` line, or with --json restic's "error" message on stderr. */
  warn(json: boolean, message: string): void {
    this.errors++;
    this.reporter.interrupt();
    // (the item: the first absolute path the warning names)
    printWarning(json, message, 'restore', /(\/[^:]*): /.exec(message)?.[1]);
  }

  stop(): void {
    this.reporter.stop();
  }

  counts(): StatusCounts {
    const st = this.stats?.();
    const u = this.underway?.();
    const files = (st?.files_restored ?? 0) + (st?.files_skipped ?? 0);
    const bytes = (st?.bytes_restored ?? 0) + (st?.bytes_skipped ?? 0) + (u?.partialBytes ?? 0);
    const whole = u?.plan ?? this.whole;
    return {
      files_done: files,
      bytes_done: bytes,
      total_files: Math.max(whole?.files ?? 0, st?.total_files ?? 0, files),
      total_bytes: Math.max(whole?.bytes ?? 0, st?.total_bytes ?? 0, bytes),
      current_files: this.current ? [pathText(this.current)] : [],
      error_count: this.errors,
    };
  }

  /** restic's restore "status" message. */
  private statusMessage(c: StatusCounts, elapsedS: number) {
    const st = this.stats?.();
    const left = secondsRemaining(c, elapsedS);
    return {
      message_type: 'status' as const,
      seconds_elapsed: Math.floor(elapsedS),
      // restic omits it while unknown
      ...(left === undefined ? {} : { seconds_remaining: left }),
      percent_done: percentDone(c),
      total_files: c.total_files ?? 0,
      files_restored: st?.files_restored ?? 0,
      files_skipped: st?.files_skipped ?? 0,
      files_deleted: st?.files_deleted ?? 0,
      total_bytes: c.total_bytes ?? 0,
      bytes_restored: (st?.bytes_restored ?? 0) + (this.underway?.().partialBytes ?? 0),
      bytes_skipped: st?.bytes_skipped ?? 0,
    };
  }

  /**
   * An interrupted restore's --json summary (exit 130): the counts so far and
   * what is incomplete (restore/restore-interrupt.ts), flagged `interrupted`.
   */
  interrupted(snap: Snapshot, target: string, st: RestoreStats, left: RestoreIncomplete) {
    return { ...this.summary(snap, target, st), interrupted: true, ...left };
  }

  /** restic's restore "summary" message: the restorer's counts carry its fields; Keep's (snapshot, target...) alongside. */
  summary(snap: Snapshot, target: string, st: RestoreStats) {
    return { message_type: 'summary' as const, seconds_elapsed: Math.floor(this.reporter.elapsedS()), snapshot: snap.id, source: snap.source, time: snap.time, target, ...st };
  }
}
