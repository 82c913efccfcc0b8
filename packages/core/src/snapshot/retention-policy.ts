import { KeepError } from '../errors.js';
import type { Tier } from '../tiers.js';

/**
 * Retention policies (retention.ts applies them): their fields, restic's
 * durations, validation and wording, and the default policy per tier.
 */

/** restic's duration: a combination of NyNmNdNh, e.g. "1y2m3d4h", "30d". */
export interface RetentionDuration {
  years: number;
  months: number;
  days: number;
  hours: number;
}

export interface RetentionPolicy {
  /** keep the N newest snapshots (-1: all) */
  last?: number;
  /** keep the newest snapshot of each of the N newest hours that have snapshots (-1: all) */
  hourly?: number;
  daily?: number;
  /** ISO 8601 weeks (Monday to Sunday, week-numbering year) */
  weekly?: number;
  monthly?: number;
  yearly?: number;
  /** keep every snapshot newer than (newest snapshot - duration); restic format, e.g. "30d", "1y2m" */
  within?: string;
  /** keep the newest snapshot of each hour within this duration of the newest snapshot */
  withinHourly?: string;
  withinDaily?: string;
  withinWeekly?: string;
  withinMonthly?: string;
  withinYearly?: string;
  /** keep snapshots having all the tags of any entry; an entry may be "a,b" (both required) */
  tags?: string[];
}

const COUNT_FIELDS = ['last', 'hourly', 'daily', 'weekly', 'monthly', 'yearly'] as const;
const WITHIN_FIELDS = ['within', 'withinHourly', 'withinDaily', 'withinWeekly', 'withinMonthly', 'withinYearly'] as const;

export function invalid(message: string): KeepError {
  return new KeepError('INVALID_ARGUMENT', message);
}

/**
 * Parse a restic duration ("1y2m3d4h", any subset, any order; a repeated unit
 * overrides the earlier one; "" is the zero duration). Units: y years, m
 * months, d days, h hours. Negative values are refused, as restic's forget does.
 */
export function parseDuration(text: string): RetentionDuration {
  const d: RetentionDuration = { years: 0, months: 0, days: 0, hours: 0 };
  let s = text.trim();
  while (s !== '') {
    if (s[0] === '-') throw invalid(`durations containing negative values are not allowed: ${text}`);
    const m = /^[0-9]+/.exec(s);
    if (!m) throw invalid(`not a duration: ${text} (no number found; use e.g. 30d, 1y2m, 1y2m3d4h)`);
    const num = Number(m[0]);
    if (!Number.isSafeInteger(num)) throw invalid(`duration out of range: ${text}`);
    s = s.slice(m[0].length);
    if (s === '') throw invalid(`not a duration: ${text} (no unit found after number ${num}; units are y, m, d, h)`);
    switch (s[0]) {
      case 'y':
        d.years = num;
        break;
      case 'm':
        d.months = num;
        break;
      case 'd':
        d.days = num;
        break;
      case 'h':
        d.hours = num;
        break;
      default:
        throw invalid(`not a duration: ${text} (invalid unit "${s[0]}" after number ${num}; units are y, m, d, h)`);
    }
    s = s.slice(1);
  }
  return d;
}

/** restic's Duration.String(): non-zero parts in y m d h order ("" for zero). */
export function formatDuration(d: RetentionDuration): string {
  return (d.years ? `${d.years}y` : '') + (d.months ? `${d.months}m` : '') + (d.days ? `${d.days}d` : '') + (d.hours ? `${d.hours}h` : '');
}

export function isZeroDuration(d: RetentionDuration): boolean {
  return d.years === 0 && d.months === 0 && d.days === 0 && d.hours === 0;
}

/**
 * `time` (ms since epoch) minus `d`, like Go's t.AddDate(-y, -m, -d).Add(-h hours)
 * in UTC: years, months and days are subtracted from the calendar date in one
 * step and the result normalized (2026-03-31 minus 1m = "2026-02-31" =
 * 2026-03-03; 2024-02-29 minus 1y = 2023-03-01), then hours are exact.
 */
export function subtractDuration(time: number, d: RetentionDuration): number {
  const t = new Date(time);
  t.setUTCFullYear(t.getUTCFullYear() - d.years, t.getUTCMonth() - d.months, t.getUTCDate() - d.days);
  return t.getTime() - d.hours * 3_600_000;
}

/** restic's ExpirePolicy.Empty(): no count, no duration and no tag rule set. */
export function isEmptyPolicy(p: RetentionPolicy): boolean {
  if (p.tags && p.tags.length > 0) return false;
  for (const f of COUNT_FIELDS) if ((p[f] ?? 0) !== 0) return false;
  for (const f of WITHIN_FIELDS) {
    const v = p[f];
    // an unparsable duration is not "empty": validatePolicy reports it
    if (v !== undefined && (!isWellFormedDuration(v) || !isZeroDuration(parseDuration(v)))) return false;
  }
  return true;
}

function isWellFormedDuration(v: unknown): v is string {
  if (typeof v !== 'string') return false;
  try {
    parseDuration(v);
    return true;
  } catch {
    return false;
  }
}

/**
 * Refuse what restic's forget refuses: counts other than integers >= -1 and
 * negative or malformed durations. Throws INVALID_ARGUMENT.
 */
export function validatePolicy(p: RetentionPolicy): void {
  for (const f of COUNT_FIELDS) {
    const v = p[f];
    if (v === undefined) continue;
    if (!Number.isSafeInteger(v) || v < -1) throw invalid(`keep ${f} must be a whole number, or -1 for all (negative values other than -1 are not allowed), not ${String(v)}`);
  }
  for (const f of WITHIN_FIELDS) {
    const v = p[f];
    if (v === undefined) continue;
    if (typeof v !== 'string') throw invalid(`keep ${f} must be a duration like 30d or 1y2m, not ${String(v)}`);
    parseDuration(v);
  }
  if (p.tags !== undefined && (!Array.isArray(p.tags) || p.tags.some((t) => typeof t !== 'string'))) throw invalid('keep tags must be a list of strings');
}

/** restic's ExpirePolicy.String(), e.g. "keep 7 daily, 4 weekly snapshots and all snapshots within 30d of the newest". */
export function describePolicy(p: RetentionPolicy): string {
  const keeps: string[] = [];
  const names: Record<(typeof COUNT_FIELDS)[number], string> = { last: 'latest', hourly: 'hourly', daily: 'daily', weekly: 'weekly', monthly: 'monthly', yearly: 'yearly' };
  for (const f of COUNT_FIELDS) {
    const n = p[f] ?? 0;
    if (n > 0) keeps.push(`${n} ${names[f]}`);
    else if (n === -1) keeps.push(`all ${names[f]}`);
  }
  const keepw: string[] = [];
  for (const [f, kind] of [
    ['withinHourly', 'hourly'],
    ['withinDaily', 'daily'],
    ['withinWeekly', 'weekly'],
    ['withinMonthly', 'monthly'],
    ['withinYearly', 'yearly'],
  ] as const) {
    const d = durationOf(p[f]);
    if (d) keepw.push(`${kind} snapshots within ${formatDuration(d)}`);
  }
  let s = keeps.length > 0 ? `${keeps.join(', ')} snapshots` : '';
  if (keepw.length > 0) s += (s ? ', ' : '') + keepw.join(', ');
  if (p.tags && p.tags.length > 0) s += (s ? ' and ' : '') + `all snapshots with tags [${p.tags.map(tagListString).join(' ')}]`;
  const w = durationOf(p.within);
  if (w) s += (s ? ' and ' : '') + `all snapshots within ${formatDuration(w)} of the newest`;
  return s === '' ? 'remove' : `keep ${s}`;
}

export function durationOf(v: string | undefined): RetentionDuration | undefined {
  if (v === undefined) return undefined;
  const d = parseDuration(v);
  return isZeroDuration(d) ? undefined : d;
}

/** restic's splitTagList: comma-separated, whitespace trimmed. */
export function splitTagList(entry: string): string[] {
  return entry.split(',').map((t) => t.trim());
}

/** restic's TagList.String(): "[a, b]". */
export function tagListString(entry: string): string {
  return `[${splitTagList(entry).join(', ')}]`;
}

/**
 * Default retention per tier (the tier table, tiers.ts), all measured from the
 * group's newest snapshot (restic's keep-within semantics), so a source whose
 * backups stop keeps its history instead of ageing out:
 *
 * | tier     | design brief                             | policy                                       | on an hourly schedule           |
 * |----------|------------------------------------------|----------------------------------------------|---------------------------------|
 * | critical | 30 days of dailies, 180 days of hourlies | withinHourly 180d, withinDaily 30d           | one per hour for 180 days       |
 * | high     | 5–30 days                                | within 5d, withinDaily 30d                   | all for 5 days, daily to 30     |
 * | standard | 7 days                                   | within 7d                                    | all for 7 days                  |
 * | lower    | 1–4 weeks                                | within 7d, withinWeekly 28d                  | all for 7 days, weekly to 4 wks |
 *
 * Ranges are read as "everything for the short end, one per coarser bucket up
 * to the long end". Time windows rather than counts because the table speaks
 * in days: a count such as hourly 4320 would reach back years on a source
 * that backs up rarely. Critical's "30 days of dailies" is kept literally
 * (it adds reasons, but every daily in 30 days is already an hourly in 180).
 */
export const TIER_RETENTION: Readonly<Record<Tier, Readonly<RetentionPolicy>>> = Object.freeze({
  critical: Object.freeze({ withinHourly: '180d', withinDaily: '30d' }),
  high: Object.freeze({ within: '5d', withinDaily: '30d' }),
  standard: Object.freeze({ within: '7d' }),
  lower: Object.freeze({ within: '7d', withinWeekly: '28d' }),
});
