import { KeepError } from '../errors.js';
import type { Tier } from '../tiers.js';
import { parseTime, recordedTime, Snapshot } from './snapshot.js';

/**
 * Retention ("forget") policy engine: pure logic, no I/O, no clock of its own.
 *
 * The semantics are restic's `forget` (internal/data/snapshot_policy.go),
 * rule for rule:
 *
 * - Snapshots of one group are sorted newest first.
 * - `last N` keeps the N newest snapshots.
 * - `hourly/daily/weekly/monthly/yearly N`: walking newest to oldest, a
 *   snapshot is kept when its bucket (YYYY-MM-DD HH, YYYY-MM-DD, ISO
 *   year-week, YYYY-MM, YYYY) differs from the bucket of the last snapshot
 *   that rule kept, until N buckets are kept. So the newest snapshot of each
 *   bucket is the one kept, and only buckets that HAVE snapshots count.
 *   -1 means unlimited. If a rule still has counts left when the walk reaches
 *   the oldest snapshot of the group, that oldest snapshot is kept too
 *   (reason "oldest daily snapshot" etc.), which maximizes the history kept
 *   (restic >= 0.16).
 * - `within D` keeps every snapshot strictly newer than (newest - D).
 *   "Newest" is the newest snapshot of the group that is not in the future
 *   (time < now), exactly like restic: a source whose backups stopped keeps
 *   its history instead of ageing out. If every snapshot is in the future,
 *   all are within.
 * - `withinHourly/withinDaily/...  D` keep the newest snapshot of each bucket
 *   among the snapshots newer than (newest - D), plus the group's oldest
 *   snapshot if it is itself inside the window (restic's --keep-within-*).
 * - `tags` keeps snapshots matching any entry. An entry is a comma-separated
 *   tag list that must ALL be present (restic's --keep-tag "a,b"); the entry
 *   "" matches snapshots without tags. Tags are not counted.
 * - A snapshot is kept if any rule keeps it; `reasons` lists every rule that
 *   did, in restic's order and wording: "has tags [a, b]", "within 30d",
 *   "last snapshot", "hourly snapshot", ... "yearly snapshot",
 *   "hourly within 180d", ... "yearly within 2y"; then Keep's "protected".
 *
 * Durations are subtracted calendar-aware like Go's time.AddDate (years,
 * months and days in one step, then overflowing days normalize: 31 March
 * minus 1m is 3 March), then hours as exact hours.
 *
 * All bucket boundaries are computed in UTC (snapshot times are UTC): a day is
 * a UTC day, a week an ISO 8601 week of UTC dates. restic uses each snapshot's
 * own zone; Keep stores no zone, so UTC is the only stable choice.
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

export interface Decision {
  snapshot: Snapshot;
  keep: boolean;
  /** every rule that keeps the snapshot; empty when it is forgotten */
  reasons: string[];
}

export interface RetentionOptions {
  /**
   * Ids that must be kept whatever the policy says (e.g. the parent of an open
   * backup session). A Set gives the reason "protected"; a Map gives
   * "protected: <its value>". Protection consumes no bucket counts.
   */
  protect?: ReadonlySet<string> | ReadonlyMap<string, string>;
  /** bucket boundaries; only UTC is supported */
  timezone?: 'UTC';
}

const COUNT_FIELDS = ['last', 'hourly', 'daily', 'weekly', 'monthly', 'yearly'] as const;
const WITHIN_FIELDS = ['within', 'withinHourly', 'withinDaily', 'withinWeekly', 'withinMonthly', 'withinYearly'] as const;

function invalid(message: string): KeepError {
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

function durationOf(v: string | undefined): RetentionDuration | undefined {
  if (v === undefined) return undefined;
  const d = parseDuration(v);
  return isZeroDuration(d) ? undefined : d;
}

/** restic's splitTagList: comma-separated, whitespace trimmed. */
function splitTagList(entry: string): string[] {
  return entry.split(',').map((t) => t.trim());
}

/** restic's TagList.String(): "[a, b]". */
function tagListString(entry: string): string {
  return `[${splitTagList(entry).join(', ')}]`;
}

/** restic's Snapshot.HasTags: all tags present; "" matches a snapshot without tags. */
function hasTags(s: Snapshot, list: string[]): boolean {
  for (const tag of list) {
    if (tag === '' && s.tags.length === 0) return true;
    if (!s.tags.includes(tag)) return false;
  }
  return true;
}

// Bucket functions: restic's integer encodings, in UTC.
type Bucker = (t: Date, nr: number) => number;
const ymdh: Bucker = (t) => t.getUTCFullYear() * 1_000_000 + (t.getUTCMonth() + 1) * 10_000 + t.getUTCDate() * 100 + t.getUTCHours();
const ymd: Bucker = (t) => t.getUTCFullYear() * 10_000 + (t.getUTCMonth() + 1) * 100 + t.getUTCDate();
const yw: Bucker = (t) => {
  const { year, week } = isoWeek(t);
  return year * 100 + week;
};
const ym: Bucker = (t) => t.getUTCFullYear() * 100 + (t.getUTCMonth() + 1);
const y: Bucker = (t) => t.getUTCFullYear();
const always: Bucker = (_t, nr) => nr;

/** ISO 8601 week-numbering year and week of the UTC date of `t` (like Go's ISOWeek). */
export function isoWeek(t: Date): { year: number; week: number } {
  const day = (t.getUTCDay() + 6) % 7; // Monday = 0
  const thursday = new Date(0);
  thursday.setUTCFullYear(t.getUTCFullYear(), t.getUTCMonth(), t.getUTCDate() - day + 3);
  const year = thursday.getUTCFullYear();
  const jan1 = new Date(0);
  jan1.setUTCFullYear(year, 0, 1);
  const week = 1 + Math.floor((thursday.getTime() - jan1.getTime()) / (7 * 86_400_000));
  return { year, week };
}

/**
 * Apply `policy` to the snapshots of ONE group (see groupBySource). Returns
 * one decision per snapshot, sorted NEWEST FIRST (restic's order); snapshots
 * with equal times are ordered by id, descending. `now` (ms, from the
 * injected Clock) only serves to ignore future snapshots when finding the
 * newest one that `within` rules measure from. An empty policy keeps
 * everything with the reason "policy is empty" (callers must refuse it before
 * getting here: see isEmptyPolicy). Throws INVALID_ARGUMENT for a policy
 * restic would refuse, or a snapshot time that does not parse.
 */
export function applyRetention(snapshots: readonly Snapshot[], policy: RetentionPolicy, now: number, opts: RetentionOptions = {}): Decision[] {
  if (opts.timezone !== undefined && opts.timezone !== 'UTC') throw invalid(`retention timezone must be UTC, not ${String(opts.timezone)}`);
  validatePolicy(policy);

  const list = snapshots
    .map((snapshot) => {
      parseTime(snapshot.time); // (refuses a time that does not parse)
      // the repository's recorded time: a writer's clock cannot keep its snapshot from retention
      return { snapshot, ms: recordedTime(snapshot) };
    })
    .sort((a, b) => b.ms - a.ms || (a.snapshot.id < b.snapshot.id ? 1 : a.snapshot.id > b.snapshot.id ? -1 : 0));

  const protectReason = (id: string): string | undefined => {
    const p = opts.protect;
    if (!p || !p.has(id)) return undefined;
    const why = p instanceof Map ? p.get(id) : undefined;
    return why ? `protected: ${why}` : 'protected';
  };

  if (isEmptyPolicy(policy)) {
    return list.map(({ snapshot }) => {
      const reasons = ['policy is empty'];
      const pr = protectReason(snapshot.id);
      if (pr) reasons.push(pr);
      return { snapshot, keep: true, reasons };
    });
  }
  if (list.length === 0) return [];

  const buckets = [
    { count: policy.last ?? 0, bucker: always, last: -1, reason: 'last snapshot' },
    { count: policy.hourly ?? 0, bucker: ymdh, last: -1, reason: 'hourly snapshot' },
    { count: policy.daily ?? 0, bucker: ymd, last: -1, reason: 'daily snapshot' },
    { count: policy.weekly ?? 0, bucker: yw, last: -1, reason: 'weekly snapshot' },
    { count: policy.monthly ?? 0, bucker: ym, last: -1, reason: 'monthly snapshot' },
    { count: policy.yearly ?? 0, bucker: y, last: -1, reason: 'yearly snapshot' },
  ];
  const withinBuckets = (
    [
      [policy.withinHourly, ymdh, 'hourly within'],
      [policy.withinDaily, ymd, 'daily within'],
      [policy.withinWeekly, yw, 'weekly within'],
      [policy.withinMonthly, ym, 'monthly within'],
      [policy.withinYearly, y, 'yearly within'],
    ] as const
  ).map(([text, bucker, reason]) => ({ within: durationOf(text), bucker, last: -1, reason }));
  const within = durationOf(policy.within);
  const tagLists = (policy.tags ?? []).map((entry) => ({ tags: splitTagList(entry), label: tagListString(entry) }));

  // restic's findLatestTimestamp: the newest snapshot that is not in the future.
  let latest: number | undefined;
  for (const { ms } of list) if (ms < now && (latest === undefined || ms > latest)) latest = ms;
  const threshold = (d: RetentionDuration): number => (latest === undefined ? -Infinity : subtractDuration(latest, d));
  const withinAfter = within ? threshold(within) : undefined;
  const withinBucketAfter = withinBuckets.map((b) => (b.within ? threshold(b.within) : undefined));

  const oldest = list.length - 1;
  return list.map(({ snapshot, ms }, nr) => {
    const t = new Date(ms);
    const reasons: string[] = [];

    for (const tl of tagLists) if (hasTags(snapshot, tl.tags)) reasons.push(`has tags ${tl.label}`);

    if (within && withinAfter !== undefined && ms > withinAfter) reasons.push(`within ${formatDuration(within)}`);

    for (const b of buckets) {
      if (b.count > 0 || b.count === -1) {
        const val = b.bucker(t, nr);
        // also keep the oldest snapshot while counts are left (restic >= 0.16)
        if (val !== b.last || nr === oldest) {
          reasons.push(val === b.last ? `oldest ${b.reason}` : b.reason);
          b.last = val;
          if (b.count > 0) b.count--;
        }
      }
    }

    withinBuckets.forEach((b, i) => {
      const after = withinBucketAfter[i];
      if (!b.within || after === undefined || !(ms > after)) return;
      const val = b.bucker(t, nr);
      if (val !== b.last || nr === oldest) {
        reasons.push(`${val === b.last ? `oldest ${b.reason}` : b.reason} ${formatDuration(b.within)}`);
        b.last = val;
      }
    });

    const pr = protectReason(snapshot.id);
    if (pr) reasons.push(pr);
    return { snapshot, keep: reasons.length > 0, reasons };
  });
}

/**
 * Split snapshots into retention groups by `source` (which already names the
 * host: a snapshot's source is host + name). Groups appear in order of first
 * appearance; each keeps the input order of its snapshots.
 */
export function groupBySource(snapshots: readonly Snapshot[]): Map<string, Snapshot[]> {
  const groups = new Map<string, Snapshot[]>();
  for (const s of snapshots) {
    const g = groups.get(s.source);
    if (g) g.push(s);
    else groups.set(s.source, [s]);
  }
  return groups;
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
