import type { AgentConfig, Job } from './config.js';
import type { RunReason } from './run-outcome.js';
import type { StateFile } from './state-file.js';

export interface StatusInput {
  config: AgentConfig;
  state: StateFile;
  plans: { job: Job; next: number; reason: RunReason; running: boolean; failures: number }[];
  started: number;
  now: number;
}

const iso = (t: number | undefined) => (t === undefined || !Number.isFinite(t) ? null : new Date(t).toISOString());

/** What `keep agent status --json` prints: the agent, and per job its plan, last run and last success. */
export function statusReport(s: StatusInput) {
  return {
    pid: process.pid,
    config: s.config.file,
    started: iso(s.started),
    now: iso(s.now),
    jobs: s.plans.map((p) => {
      const last = s.state.history(p.job.name).last;
      const ok = s.state.lastSuccess(p.job.name);
      return {
        name: p.job.name,
        type: p.job.spec.type,
        source: p.job.source,
        tier: p.job.tier ?? null,
        running: p.running,
        next_run: p.running ? null : iso(p.next),
        next_reason: p.reason,
        failures_in_a_row: p.failures,
        last_run: last ? { ...last, start: iso(last.start), end: iso(last.end) } : null,
        last_success: ok ? iso(ok.start) : null,
      };
    }),
  };
}
