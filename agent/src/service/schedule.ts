import { PlannedRuns } from '@keep/core/config';
import type { ScheduleSpec } from './config.js';

/**
 * When a job runs: a cron expression (croner) or a fixed interval, plus a
 * random delay up to the jitter so a fleet of hosts with one config does not
 * hit keepd in the same second. Times are milliseconds on the service's clock.
 */
export class Schedule {
  private readonly runs: PlannedRuns;

  constructor(
    readonly spec: ScheduleSpec,
    private readonly random: () => number = Math.random,
  ) {
    this.runs = new PlannedRuns(spec.cron, spec.everyMs);
  }

  /** The planned time after `after`, without jitter. */
  planned(after: number): number {
    return this.runs.after(after);
  }

  /** The planned time after `after`, delayed by a random part of the jitter. */
  next(after: number): number {
    return this.planned(after) + this.jitter();
  }

  /** A random delay in [0, jitter). */
  jitter(): number {
    return Math.floor(this.random() * this.spec.jitterMs);
  }
}
