import { Cron } from 'croner';
import * as v from 'valibot';
import { durationMs } from './duration.js';

/** Schema pieces keep's agent.yaml and keepd's keepd.yaml share (valibot; their issues become file:line:key). */

/** "30s", "15m", "1h30m" or seconds, as milliseconds. */
export const durationSchema = v.pipe(
  v.union([v.string(), v.number()], 'must be a duration such as 30s, 15m or 1h30m'),
  v.check((s) => durationMs(s) !== undefined, (i) => `must be a duration such as 30s, 15m or 1h30m, not ${JSON.stringify(i.input)}`),
  v.transform((s) => durationMs(s)!),
);

/** croner's complaint about `pattern`, or undefined when it is a cron expression. */
export function cronProblem(pattern: string): string | undefined {
  try {
    new Cron(pattern, { paused: true });
    return undefined;
  } catch (e) {
    return (e as Error).message.replace(/^CronPattern: /, '');
  }
}

export const cronSchema = v.pipe(
  v.string('must be a cron expression such as "*/5 * * * *"'),
  v.check((s) => cronProblem(s) === undefined, (i) => `not a cron expression: ${cronProblem(i.input as string)}`),
);
