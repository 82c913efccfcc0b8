/**
 * The agent's scheduler (agent/src/service/scheduler.ts) on a manual clock:
 * missed runs, no overlap, back-off inside the RPO budget, jitter bounds,
 * cron plans. The runs are real promises the test settles.
 */
import { ManualClock } from '@keep/core';
import { describe, expect, it } from 'vitest';
import type { Job } from '@keep/agent/dist/service/config.js';
import type { RunOutcome, RunTotals } from '@keep/agent/dist/service/run-outcome.js';
import { Schedule } from '@keep/agent/dist/service/schedule.js';
import { backoffBase, JobHistory, Scheduler } from '@keep/agent/dist/service/scheduler.js';

const T0 = Date.parse('2026-03-01T10:00:00Z');
const MIN = 60_000;

function job(name: string, schedule: Job['schedule'], rpoMs = 15 * MIN): Job {
  return { name, source: name, tags: [], compression: 'medium', schedule, rpoMs, spec: { type: 'command', name, argv: ['true'], stdin_name: name } };
}

/** A scheduler whose runs wait for the test to end them. */
function harness(jobs: Job[], history: Record<string, JobHistory> = {}, random = () => 0.5) {
  const clock = new ManualClock(T0);
  const outcomes: RunOutcome[] = [];
  const pending: { job: string; start: number; end: (fail?: string) => void }[] = [];
  const s = new Scheduler(clock, {
    random,
    run: (j) =>
      new Promise<RunTotals>((resolve, reject) => {
        pending.push({ job: j.name, start: clock.now(), end: (fail) => (fail ? reject(new Error(fail)) : resolve({ files: 1, bytes: 2, warnings: [] })) });
      }),
    onOutcome: (o) => {
      outcomes.push(o);
    },
  });
  s.setJobs(jobs, (n) => history[n] ?? {});
  /** end the oldest pending run and wait for its outcome to be planned */
  const finish = async (fail?: string) => {
    const p = pending.shift()!;
    const n = outcomes.length;
    p.end(fail);
    while (outcomes.length === n) await new Promise((r) => setImmediate(r));
    return outcomes[outcomes.length - 1];
  };
  return { clock, s, outcomes, pending, finish };
}

describe('agent scheduler', () => {
  it('runs a job never run at start, then every interval from its start', async () => {
    const h = harness([job('a', { everyMs: 5 * MIN, jitterMs: 0 })]);
    expect(h.s.nextWake()).toBe(T0);
    h.s.tick();
    expect(h.pending.map((p) => p.job)).toEqual(['a']);
    h.clock.advance(30_000);
    const o = await h.finish();
    expect(o).toMatchObject({ job: 'a', reason: 'first', result: 'success', start: T0, end: T0 + 30_000, attempt: 1 });
    expect(h.s.nextWake()).toBe(T0 + 5 * MIN);
    h.clock.set(T0 + 5 * MIN - 1);
    expect(h.s.tick()).toHaveLength(0);
    h.clock.set(T0 + 5 * MIN);
    expect(h.s.tick()).toHaveLength(1);
  });

  it('runs a run missed while down once at start, and a run killed mid-way again', () => {
    const last: RunOutcome = { job: 'a', reason: 'scheduled', attempt: 1, start: T0 - 3 * 60 * MIN, end: T0 - 3 * 60 * MIN + 1000, result: 'success', files: 0, bytes: 0, warnings: [] };
    const h = harness([job('a', { everyMs: 60 * MIN, jitterMs: 0 }), job('b', { everyMs: 60 * MIN, jitterMs: 0 }), job('c', { everyMs: 60 * MIN, jitterMs: 0 })], {
      a: { last }, // three intervals missed: one run, now
      b: { last: { ...last, job: 'b', start: T0 - 10 * MIN } }, // not yet due: in 50 minutes
      c: { last: { ...last, job: 'c', start: T0 - 10 * MIN }, running: { start: T0 - 2 * MIN } }, // killed mid-run
    });
    expect(h.s.tick()).toHaveLength(2);
    expect(h.pending.map((p) => p.job).sort()).toEqual(['a', 'c']);
    const plans = Object.fromEntries(h.s.plans().map((p) => [p.job.name, p]));
    expect(plans.a).toMatchObject({ reason: 'missed', running: true });
    expect(plans.c).toMatchObject({ reason: 'interrupted', running: true });
    expect(plans.b).toMatchObject({ reason: 'scheduled', next: T0 + 50 * MIN, running: false });
  });

  it('never starts a second run of a job while one runs; the time that passed is one run after it', async () => {
    const h = harness([job('a', { everyMs: MIN, jitterMs: 0 })]);
    h.s.tick();
    for (let i = 0; i < 5; i++) {
      h.clock.advance(MIN);
      expect(h.s.tick()).toHaveLength(0);
    }
    expect(h.pending).toHaveLength(1);
    await h.finish();
    // five intervals passed during the run: the next is one interval from now, not five catch-up runs
    expect(h.s.nextWake()).toBe(T0 + 6 * MIN);
    h.clock.advance(MIN);
    expect(h.s.tick()).toHaveLength(1);
    expect(h.s.tick()).toHaveLength(0);
  });

  it('retries a failure with exponential back-off while the RPO budget lasts, then waits for the schedule', async () => {
    const rpo = 15 * MIN;
    const h = harness([job('a', { everyMs: 60 * MIN, jitterMs: 0 }, rpo)]);
    const base = backoffBase(rpo);
    expect(base).toBe(30_000);
    h.s.tick();
    const starts: number[] = [];
    const delays: number[] = [];
    for (;;) {
      starts.push(h.pending[0].start);
      const o = await h.finish('boom');
      expect(o).toMatchObject({ result: 'failure', error: 'boom', attempt: starts.length });
      const next = h.s.nextWake()!;
      const plan = h.s.plans()[0];
      if (plan.reason !== 'retry') break;
      delays.push(next - h.clock.now());
      h.clock.set(next);
      expect(h.s.tick()).toHaveLength(1);
    }
    expect(delays).toEqual([base, 2 * base, 4 * base, 8 * base, 16 * base].filter((_, i) => (2 ** (i + 1) - 1) * base <= rpo));
    expect(delays).toHaveLength(4); // 30 + 60 + 120 + 240 s; the next (480 s) would end past 15 minutes
    // given up: the next scheduled run, an hour after the first
    expect(h.s.nextWake()).toBe(T0 + 60 * MIN);
    h.clock.set(T0 + 60 * MIN);
    h.s.tick();
    const o = await h.finish();
    expect(o).toMatchObject({ result: 'success', attempt: 1, reason: 'scheduled' });
  });

  it('delays each run by a random part of the jitter, never more', () => {
    const s = new Schedule({ everyMs: 10 * MIN, jitterMs: MIN }, Math.random);
    for (let i = 0; i < 1000; i++) {
      const next = s.next(T0);
      expect(next).toBeGreaterThanOrEqual(T0 + 10 * MIN);
      expect(next).toBeLessThan(T0 + 11 * MIN);
    }
    const low = new Schedule({ everyMs: 10 * MIN, jitterMs: MIN }, () => 0);
    const high = new Schedule({ everyMs: 10 * MIN, jitterMs: MIN }, () => 0.999999);
    expect(low.next(T0)).toBe(T0 + 10 * MIN);
    expect(high.next(T0)).toBe(T0 + 11 * MIN - 1);
    // a job never run starts within the jitter too (a fleet started together spreads out)
    const h = harness([job('a', { everyMs: 10 * MIN, jitterMs: MIN })], {}, () => 0.25);
    expect(h.s.nextWake()).toBe(T0 + 15_000);
  });

  it('plans cron schedules with croner', () => {
    const s = new Schedule({ cron: '*/5 * * * *', jitterMs: 0 });
    expect(new Date(s.next(Date.parse('2026-03-01T10:01:30Z'))).toISOString()).toBe('2026-03-01T10:05:00.000Z');
    expect(new Date(s.next(Date.parse('2026-03-01T10:05:00Z'))).toISOString()).toBe('2026-03-01T10:10:00.000Z');
  });

  it('keeps a job plan across a reload unless its schedule changed; drops removed jobs', async () => {
    const h = harness([job('a', { everyMs: 10 * MIN, jitterMs: 0 }), job('b', { everyMs: 10 * MIN, jitterMs: 0 })]);
    h.s.tick();
    await h.finish();
    await h.finish();
    h.s.setJobs([job('a', { everyMs: 10 * MIN, jitterMs: 0 }), job('c', { everyMs: 20 * MIN, jitterMs: 0 })], () => ({}));
    const plans = Object.fromEntries(h.s.plans().map((p) => [p.job.name, p]));
    expect(Object.keys(plans).sort()).toEqual(['a', 'c']);
    expect(plans.a.next).toBe(T0 + 10 * MIN);
    expect(plans.c).toMatchObject({ next: T0, reason: 'first' });
  });
});
