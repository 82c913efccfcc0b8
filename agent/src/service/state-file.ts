import fs from 'node:fs';
import path from 'node:path';
import type { RunOutcome, RunReason } from './run-outcome.js';
import type { JobHistory } from './scheduler.js';

/** How many finished runs per job the state file keeps. */
const KEEP_RUNS = 10;

interface JobState {
  runs: RunOutcome[];
  /** a run that started and has not ended: still so at the next start, it was killed */
  running?: { start: number; reason: RunReason };
}

interface StateData {
  version: 1;
  jobs: Record<string, JobState>;
}

/**
 * The agent's local record of its runs (agent-state.json in the state
 * directory): each job's last runs and a run under way. Written whole to a
 * temporary file, synced and renamed over the old one, so a crash leaves the
 * old record or the new, never half of one. Nothing secret goes in it.
 */
export class StateFile {
  private data: StateData;

  private constructor(readonly file: string) {
    this.data = StateFile.read(file);
  }

  static open(dir: string): StateFile {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    return new StateFile(path.join(dir, 'agent-state.json'));
  }

  private static read(file: string): StateData {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { version: 1, jobs: {} };
      throw e;
    }
    const data = JSON.parse(text) as StateData;
    if (data.version !== 1 || typeof data.jobs !== 'object') throw new Error(`${file}: not a keep agent state file (version ${String(data.version)})`);
    return data;
  }

  history(job: string): JobHistory {
    const s = this.data.jobs[job];
    return { last: s?.runs[s.runs.length - 1], running: s?.running };
  }

  runs(job: string): RunOutcome[] {
    return this.data.jobs[job]?.runs ?? [];
  }

  lastSuccess(job: string): RunOutcome | undefined {
    return this.runs(job).findLast((r) => r.result === 'success');
  }

  markRunning(job: string, start: number, reason: RunReason): void {
    const s = (this.data.jobs[job] ??= { runs: [] });
    s.running = { start, reason };
    this.write();
  }

  record(o: RunOutcome): void {
    const s = (this.data.jobs[o.job] ??= { runs: [] });
    s.running = undefined;
    s.runs = [...s.runs, o].slice(-KEEP_RUNS);
    this.write();
  }

  private write(): void {
    const tmp = `${this.file}.tmp-${process.pid}`;
    const fd = fs.openSync(tmp, 'w', 0o600);
    try {
      fs.writeSync(fd, JSON.stringify(this.data, null, 1));
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, this.file);
    const dir = fs.openSync(path.dirname(this.file), 'r');
    try {
      fs.fsyncSync(dir);
    } finally {
      fs.closeSync(dir);
    }
  }
}
