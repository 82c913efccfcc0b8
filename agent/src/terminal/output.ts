/** Human and JSON output. With --json, stdout carries one JSON document, or JSON lines (backup, restore). */
export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}

/** One message of a JSON-lines stream (restic's format: `message_type` tells them apart), compact on one line. */
export function printJsonLine(value: { message_type: string; [field: string]: unknown }): void {
  process.stdout.write(JSON.stringify(value) + '\n');
}

/** restic prints its "error" messages on stderr, so stdout stays the command's data. */
export function printJsonErrorLine(value: { message_type: string; [field: string]: unknown }): void {
  process.stderr.write(JSON.stringify(value) + '\n');
}

/**
 * A warning: `keep: warning: ...`, or under --json restic's "error" message
 * (`during` what, e.g. "archival", and the `item` it is about) on stderr.
 */
export function printWarning(json: boolean, message: string, during: string, item = ''): void {
  if (json) printJsonErrorLine({ message_type: 'error', error: { message }, during, item });
  else process.stderr.write(`keep: warning: ${message}\n`);
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) (n /= 1024), i++;
  return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

export function formatRate(bytes: number, seconds: number): string {
  return seconds > 0 ? `${(bytes / seconds / 1e6).toFixed(1)} MB/s` : '-';
}

/** Seconds as [h:]m:ss, restic's way of showing elapsed time and ETA. */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

/** A one-line status on stderr, redrawn at most 5 times a second, only on a TTY. */
export class ProgressLine {
  private last = 0;
  private shown = false;
  private readonly enabled = Boolean(process.stderr.isTTY) && !process.env.KEEP_NO_PROGRESS;
  private readonly started = performance.now();

  update(render: (elapsedS: number) => string, force = false): void {
    if (!this.enabled) return;
    const now = performance.now();
    if (!force && now - this.last < 200) return;
    this.last = now;
    const cols = process.stderr.columns || 100;
    let line = render((now - this.started) / 1000);
    if (line.length > cols - 1) line = line.slice(0, cols - 2) + '…';
    process.stderr.write(`\r\x1b[2K${line}`);
    this.shown = true;
  }

  done(): void {
    if (this.shown) process.stderr.write('\r\x1b[2K');
    this.shown = false;
  }
}
