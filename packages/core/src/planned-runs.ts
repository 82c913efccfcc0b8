import { Cron } from 'croner';

/**
 * When a scheduled run is planned after a given time: a cron expression
 * (croner) or a fixed interval, in milliseconds on the caller's clock. The
 * agent's job schedules and keepd's maintenance schedules both ask this.
 */
export class PlannedRuns {
  private readonly cron?: Cron;

  constructor(
    cron: string | undefined,
    private readonly everyMs: number | undefined,
  ) {
    if (cron !== undefined) this.cron = new Cron(cron, { paused: true });
  }

  /** The planned time after `after`: Infinity when the cron expression never fires again. */
  after(after: number): number {
    if (this.cron) {
      const next = this.cron.nextRun(new Date(after));
      // (croner gives none past its search horizon, e.g. Feb 30th: never)
      return next ? next.getTime() : Number.POSITIVE_INFINITY;
    }
    return after + this.everyMs!;
  }
}
