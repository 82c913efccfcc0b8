import { formatBytes, formatDuration, formatRate, printJsonLine, ProgressLine } from '../terminal/output.js';

/**
 * How a long command reports while it runs: a redrawn line on a terminal
 * (stderr), restic's "status" JSON lines on stdout with --json, or nothing
 * (not a terminal, --quiet, or KEEP_NO_PROGRESS set, as test and benchmark
 * harnesses do: their --json output is then the summary line alone).
 */
export type ProgressMode = 'terminal' | 'json' | 'off';

/** `--quiet`/`-q`: restic's flag for no progress (the summary is still printed). */
export const PROGRESS_OPTIONS = {
  quiet: { type: 'boolean', short: 'q' },
} as const;

export function progressMode(values: { json?: boolean; quiet?: boolean }): ProgressMode {
  if (values.quiet || process.env.KEEP_NO_PROGRESS) return 'off';
  if (values.json) return 'json';
  return process.stderr.isTTY ? 'terminal' : 'off';
}

/** What a command has done so far, and of how much (a total is undefined while nobody knows it). */
export interface StatusCounts {
  files_done: number;
  bytes_done: number;
  total_files?: number;
  total_bytes?: number;
  current_files: string[];
  error_count: number;
}

/** bytes_done / total_bytes, restic's percent_done (a fraction, 0..1); 0 while the total is unknown. */
export function percentDone(c: StatusCounts): number {
  if (!c.total_bytes) return c.total_bytes === 0 && c.total_files !== undefined ? 1 : 0;
  return Math.min(1, c.bytes_done / c.total_bytes);
}

/** Seconds left at the rate so far; undefined until there is a total and a rate. */
export function secondsRemaining(c: StatusCounts, elapsedS: number): number | undefined {
  if (c.total_bytes === undefined || c.bytes_done <= 0 || elapsedS <= 0) return undefined;
  const left = Math.max(0, c.total_bytes - c.bytes_done);
  return Math.round(left / (c.bytes_done / elapsedS));
}

/** The terminal line: `[0:12] 41.20%  120 / 300 files  1.2 GiB / 2.9 GiB  85.1 MB/s  ETA 0:17  /current/file`. */
export function statusLine(c: StatusCounts, elapsedS: number): string {
  const parts = [`[${formatDuration(elapsedS)}]`];
  const known = c.total_bytes !== undefined && c.total_files !== undefined;
  if (known) parts.push(`${(percentDone(c) * 100).toFixed(2)}%`);
  parts.push(known ? `${c.files_done} / ${c.total_files} files` : `${c.files_done} files`);
  parts.push(known ? `${formatBytes(c.bytes_done)} / ${formatBytes(c.total_bytes!)}` : formatBytes(c.bytes_done));
  parts.push(formatRate(c.bytes_done, elapsedS));
  const eta = secondsRemaining(c, elapsedS);
  parts.push(eta === undefined ? 'ETA -' : `ETA ${formatDuration(eta)}`);
  if (c.error_count) parts.push(`${c.error_count} error${c.error_count === 1 ? '' : 's'}`);
  if (c.current_files.length) parts.push(c.current_files.join(', '));
  return parts.join('  ');
}

/** Redraws per second: at most 5 on a terminal, 1 JSON line a second; KEEP_PROGRESS_FPS sets both (restic's RESTIC_PROGRESS_FPS). */
function intervalMs(mode: ProgressMode): number {
  const fps = Number(process.env.KEEP_PROGRESS_FPS);
  if (fps > 0) return Math.max(1000 / Math.min(fps, 60), 16);
  return mode === 'json' ? 1000 : 200;
}

/**
 * Reads the command's counts on a timer and shows them: the work itself
 * never waits on output. `json` turns counts (and the seconds since start)
 * into the command's "status" message.
 */
export class StatusReporter {
  private timer: NodeJS.Timeout | undefined;
  private readonly line = new ProgressLine();
  private readonly started = performance.now();

  constructor(
    readonly mode: ProgressMode,
    private readonly counts: () => StatusCounts,
    private readonly json: (c: StatusCounts, elapsedS: number) => { message_type: 'status' },
  ) {}

  start(): this {
    if (this.mode === 'off') return this;
    this.timer = setInterval(() => this.tick(), intervalMs(this.mode));
    this.timer.unref();
    return this;
  }

  elapsedS(): number {
    return (performance.now() - this.started) / 1000;
  }

  /** Clear the terminal line so a warning prints on its own line; the next tick draws it again. */
  interrupt(): void {
    this.line.done();
  }

  /** The last status, whatever the interval (a completed command's 100%), then stop. */
  finish(): void {
    const running = this.timer !== undefined;
    this.stop();
    if (running) this.tick(false);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.line.done();
  }

  private tick(redraw = true): void {
    const elapsed = this.elapsedS();
    const c = this.counts();
    if (this.mode === 'json') printJsonLine(this.json(c, elapsed));
    else if (redraw) this.line.update(() => statusLine(c, elapsed), true);
    else process.stderr.write(`${statusLine(c, elapsed)}\n`);
  }
}
