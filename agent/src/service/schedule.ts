import { Cron } from 'croner';
import type { ScheduleSpec } from './config.js';

/**
 * When a job runs: a cron expression (croner) or a fixed interval, plus a
 * random delay up to the jitter so a fleet of hosts with one config does not
 * hit keepd in the same second. Times are milliseconds on the service's clock.
 */
export class Schedule {
  private readonly cron?: Cron;

  constructor(
    readonly spec: ScheduleSpec,
    private readonly random: () => number = Math.random,
  ) {
    if (spec.cron !== undefined) this.cron = new Cron(spec.cron, { paused: true });
  }

  /** The planned time after `after`, without jitter. */
  planned(after: number): number {
    if (this.cron) {
      const next = this.cron.nextRun(new Date(after));
      // (croner gives none past its search horizon, e.g. Feb 30th: never)
      return next ? next.getTime() : Number.POSITIVE_INFINITY;
    }
    return after + this.spec.everyMs!;
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
