/** Human and JSON output. With --json, stdout carries exactly one JSON document. */
export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
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
