import { KeepError } from '../errors.js';
import type { RetentionPolicy } from './retention.js';

const STRING_FLAGS = [
  'keep-last',
  'keep-hourly',
  'keep-daily',
  'keep-weekly',
  'keep-monthly',
  'keep-yearly',
  'keep-within',
  'keep-within-hourly',
  'keep-within-daily',
  'keep-within-weekly',
  'keep-within-monthly',
  'keep-within-yearly',
  'source',
  'tier',
  'group-by',
] as const;

/** The policy flags' usage lines, shared by `keepd forget --help` and `keep forget --help`. */
export const FORGET_POLICY_USAGE = `  --keep-last N, --keep-hourly N, --keep-daily N, --keep-weekly N, --keep-monthly N, --keep-yearly N
                        (-1: every one)
  --keep-within D, --keep-within-hourly D, --keep-within-daily D, --keep-within-weekly D,
  --keep-within-monthly D, --keep-within-yearly D      (D: a duration like 7d, 2w, 1y6m)
  --keep-tag T          keep snapshots carrying this tag (repeatable)
  --tier critical|high|standard|lower   the tier's policy (else the tier each source was backed up with)
  --group-by LIST       apply the policy per group of source,paths,tags (any subset; default source,paths)
  --source N            only this source
  --dry-run             show what would be removed
  --prune               prune afterwards`;

/** restic's forget flags, shared by `keepd forget` and `keep forget` (util.parseArgs options). */
export const FORGET_FLAGS = {
  ...(Object.fromEntries(STRING_FLAGS.map((k) => [k, { type: 'string' as const }])) as Record<(typeof STRING_FLAGS)[number], { type: 'string' }>),
  'keep-tag': { type: 'string' as const, multiple: true as const },
  'dry-run': { type: 'boolean' as const },
  prune: { type: 'boolean' as const },
};

export function policyFromFlags(v: Record<string, unknown>): RetentionPolicy {
  const n = (k: string): number | undefined => {
    const x = v[k];
    if (x === undefined) return undefined;
    const num = Number(x);
    if (!Number.isInteger(num) || num < -1) throw new KeepError('INVALID_ARGUMENT', `--${k} takes a whole number (or -1 for all), not ${String(x)}`);
    return num;
  };
  const d = (k: string) => v[k] as string | undefined;
  const p: RetentionPolicy = {
    last: n('keep-last'),
    hourly: n('keep-hourly'),
    daily: n('keep-daily'),
    weekly: n('keep-weekly'),
    monthly: n('keep-monthly'),
    yearly: n('keep-yearly'),
    within: d('keep-within'),
    withinHourly: d('keep-within-hourly'),
    withinDaily: d('keep-within-daily'),
    withinWeekly: d('keep-within-weekly'),
    withinMonthly: d('keep-within-monthly'),
    withinYearly: d('keep-within-yearly'),
    tags: v['keep-tag'] as string[] | undefined,
  };
  for (const k of Object.keys(p) as (keyof RetentionPolicy)[]) if (p[k] === undefined) delete p[k];
  return p;
}
