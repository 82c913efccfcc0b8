import { KeepError } from '../errors.js';
import { MAX_CLOCK_SKEW_MS } from '../margins.js';

/**
 * The repository's check of a committing writer's clock (see
 * MAX_CLOCK_SKEW_MS): the snapshot's time must not lie ahead of `now` (the
 * repository's clock) nor before the writer's session began (`started`, on
 * the repository's clock), each by more than the bound. An embedded
 * repository runs on the writer's own clock, so there the check only catches
 * a time from elsewhere: the bound is keepd's defence.
 */
export function checkCommitTime(time: string, now: number, started?: number): void {
  const t = Date.parse(time);
  if (Number.isNaN(t)) throw new KeepError('INVALID_ARGUMENT', `snapshot time ${time} is not RFC 3339`);
  const limit = `${MAX_CLOCK_SKEW_MS / 1000} s allowed`;
  if (t - now > MAX_CLOCK_SKEW_MS) {
    throw new KeepError('INVALID_ARGUMENT', `snapshot refused: your clock is ${Math.round((t - now) / 1000)} s ahead of the repository server's (${limit}); set the agent's clock right (NTP) and back up again`);
  }
  if (started !== undefined && started - t > MAX_CLOCK_SKEW_MS) {
    throw new KeepError('INVALID_ARGUMENT', `snapshot refused: your clock is ${Math.round((started - t) / 1000)} s behind the repository server's (${limit}); set the agent's clock right (NTP) and back up again`);
  }
}
