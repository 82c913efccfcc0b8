import type { Clock } from '@keep/core';
import type { Job } from './config.js';
import type { RunOutcome, RunReason, RunTotals } from './run-outcome.js';
import { Schedule } from './schedule.js';
import { errorClass } from './run-error-class.js';

/** What the state file remembers of a job: its last finished run, and a run that started and never finished. */
export interface JobHistory {
  last?: RunOutcome;
  running?: { start: number };
}

export interface SchedulerHooks {
  /** runs the job; throws when the run failed (nothing committed) */
  run: (job: Job, signal: AbortSignal) => Promise<RunTotals>;
  onStart?: (job: Job, start: number, reason: RunReason) => void;
  onOutcome?: (outcome: RunOutcome) => void | Promise<void>;
  /** a job's next run changed (a run ended, jobs were set): the timer loop re-arms */
  onPlanChanged?: () => void;
  random?: () => number;
}

interface Slot {
  job: Job;
  schedule: Schedule;
  next: number;
  reason: RunReason;
  /** failures in a row since the last success */
  failures: number;
  /** retries stop when the next one would start after this: the failed run's planned time plus the RPO */
  budgetEnd?: number;
  /** the start of the first failed run of those in a row: retries keep the schedule's cadence from it */
  cycleStart?: number;
  running?: Promise<void>;
  abort?: AbortController;
}

/** The first retry's delay: a tenth of the RPO, at most 30 s; each further retry waits twice the one before. */
export function backoffBase(rpoMs: number): number {
  return Math.min(30_000, Math.floor(rpoMs / 10));
}

/**
 * Decides when each job runs, on the injected clock: its schedule; a run
 * missed while the agent was down (or asleep), or one killed mid-way, once at
 * start; failures retried with exponential back-off while the tier's RPO
 * budget lasts. A job never runs twice at once: a time that comes while it
 * runs is taken as its next plan once it ends. tick() starts what is due;
 * the service's timer calls it at nextWake(), tests call it after moving a
 * manual clock.
 */
export class Scheduler {
  private readonly slots = new Map<string, Slot>();
  /** runs under way, including those of jobs a reload removed */
  private readonly inFlight = new Set<Promise<void>>();
  private stopping = false;

  constructor(
    private readonly clock: Clock,
    private readonly hooks: SchedulerHooks,
  ) {}

  /** Set (or, on a reload, replace) the jobs; a job kept by name keeps its plan unless its schedule changed. */
  setJobs(jobs: Job[], history: (name: string) => JobHistory): void {
    const now = this.clock.now();
    const names = new Set(jobs.map((j) => j.name));
    for (const name of [...this.slots.keys()]) if (!names.has(name)) this.slots.delete(name); // a running one finishes, unplanned
    for (const job of jobs) {
      const old = this.slots.get(job.name);
      const schedule = new Schedule(job.schedule, this.hooks.random);
      if (old && JSON.stringify(old.job.schedule) === JSON.stringify(job.schedule)) {
        old.job = job;
        continue;
      }
      const plan = this.initialPlan(schedule, history(job.name), now);
      this.slots.set(job.name, { job, schedule, ...plan, failures: 0, running: old?.running, abort: old?.abort });
    }
    this.hooks.onPlanChanged?.();
  }

  private initialPlan(schedule: Schedule, h: JobHistory, now: number): { next: number; reason: RunReason } {
    if (h.running) return { next: now, reason: 'interrupted' };
    if (!h.last) return { next: now + schedule.jitter(), reason: 'first' };
    const planned = schedule.planned(h.last.start);
    if (planned <= now) return { next: now + schedule.jitter(), reason: 'missed' };
    return { next: planned + schedule.jitter(), reason: 'scheduled' };
  }

  /** Start every job that is due and not running; resolves with the runs started (tests await them). */
  tick(): Promise<void>[] {
    if (this.stopping) return [];
    const now = this.clock.now();
    const started: Promise<void>[] = [];
    for (const slot of this.slots.values()) {
      if (slot.running || slot.next > now) continue;
      started.push(this.start(slot, now));
    }
    return started;
  }

  private start(slot: Slot, now: number): Promise<void> {
    const { job, reason } = slot;
    const attempt = slot.failures + 1;
    const abort = new AbortController();
    slot.abort = abort;
    this.hooks.onStart?.(job, now, reason);
    const run = (async () => {
      let outcome: RunOutcome;
      try {
        const totals = await this.hooks.run(job, abort.signal);
        outcome = { job: job.name, reason, attempt, start: now, end: this.clock.now(), result: 'success', ...totals };
      } catch (e) {
        outcome = { job: job.name, reason, attempt, start: now, end: this.clock.now(), result: 'failure', files: 0, bytes: 0, warnings: [], error: (e as Error).message || String(e), error_class: errorClass(e) };
      }
      this.plan(slot, outcome);
      slot.running = undefined;
      slot.abort = undefined;
      await this.hooks.onOutcome?.(outcome);
      this.hooks.onPlanChanged?.();
    })();
    slot.running = run;
    this.inFlight.add(run);
    void run.finally(() => this.inFlight.delete(run));
    return run;
  }

  /** The next run after one that ended: the schedule's, or a retry while the RPO budget lasts. */
  private plan(slot: Slot, o: RunOutcome): void {
    const now = this.clock.now();
    if (o.result === 'failure' && slot.failures === 0) slot.cycleStart = o.start;
    let regular = slot.schedule.next(slot.cycleStart ?? o.start);
    if (regular <= now) regular = slot.schedule.next(now); // a run longer than the interval: no burst of catch-up runs
    if (o.result === 'success') {
      Object.assign(slot, { next: regular, reason: 'scheduled', failures: 0, budgetEnd: undefined, cycleStart: undefined });
      return;
    }
    if (slot.failures === 0) slot.budgetEnd = slot.next + slot.job.rpoMs;
    slot.failures++;
    const retryAt = now + backoffBase(slot.job.rpoMs) * 2 ** (slot.failures - 1);
    if (retryAt < regular && retryAt <= slot.budgetEnd!) {
      Object.assign(slot, { next: retryAt, reason: 'retry' });
      return;
    }
    // the budget is spent (or the schedule comes first): the next scheduled run starts afresh
    Object.assign(slot, { next: regular, reason: 'scheduled', failures: 0, budgetEnd: undefined, cycleStart: undefined });
  }

  /** When tick() has something to start next (undefined: nothing planned). */
  nextWake(): number | undefined {
    let wake: number | undefined;
    for (const s of this.slots.values()) if (!s.running && (wake === undefined || s.next < wake)) wake = s.next;
    return wake;
  }

  /** Each job's plan, for status. */
  plans(): { job: Job; next: number; reason: RunReason; running: boolean; failures: number }[] {
    return [...this.slots.values()].map((s) => ({ job: s.job, next: s.next, reason: s.reason, running: !!s.running, failures: s.failures }));
  }

  get busy(): boolean {
    return this.inFlight.size > 0;
  }

  /** Start nothing more; resolves when the running jobs have ended. */
  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all([...this.inFlight]);
  }

  /** Ask the running jobs to stop (past the grace period). */
  abortRunning(): void {
    for (const s of this.slots.values()) s.abort?.abort(new Error('the agent is stopping'));
  }
}
