import fs from 'node:fs';
import path from 'node:path';
import { atomicWrite, RunReport } from '@keep/core';

/** Reports kept while keepd cannot be reached: the newest (a long outage loses the oldest, which the state file still shows). */
const MAX_PENDING = 1000;

/**
 * Run reports keepd has not confirmed (run-reports-pending.json in the
 * state directory): each report joins the queue, the whole queue goes with
 * the next call, and what keepd confirmed leaves it; so keepd learns of
 * failures that happened while it was down. Report ids make a resend after
 * an unconfirmed delivery harmless. The error text is in the reports only
 * sealed; nothing secret goes in the file.
 */
export class ReportQueue {
  private pending: RunReport[];

  private constructor(readonly file: string) {
    this.pending = ReportQueue.read(file);
  }

  static open(dir: string): ReportQueue {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    return new ReportQueue(path.join(dir, 'run-reports-pending.json'));
  }

  private static read(file: string): RunReport[] {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
    const data = JSON.parse(text) as { version?: number; pending?: RunReport[] };
    if (data.version !== 1 || !Array.isArray(data.pending)) throw new Error(`${file}: not a keep agent report queue (version ${String(data.version)})`);
    return data.pending;
  }

  get size(): number {
    return this.pending.length;
  }

  add(r: RunReport): void {
    this.pending = [...this.pending, r].slice(-MAX_PENDING);
    this.write();
  }

  /** Everything waiting, oldest first. */
  all(): RunReport[] {
    return [...this.pending];
  }

  /** Drop what keepd took (reports added meanwhile stay). */
  delivered(ids: readonly string[]): void {
    const gone = new Set(ids);
    this.pending = this.pending.filter((r) => !gone.has(r.id));
    this.write();
  }

  private write(): void {
    atomicWrite(this.file, JSON.stringify({ version: 1, pending: this.pending }, null, 1), 0o600);
  }
}
