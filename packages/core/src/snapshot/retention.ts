import { parseTime, recordedTime, Snapshot } from './snapshot.js';
import { always, y, ym, ymd, ymdh, yw } from './retention-buckets.js';
import { durationOf, formatDuration, invalid, isEmptyPolicy, RetentionDuration, RetentionPolicy, splitTagList, subtractDuration, tagListString, validatePolicy } from './retention-policy.js';

export type { RetentionDuration, RetentionPolicy } from './retention-policy.js';
export { describePolicy, formatDuration, isEmptyPolicy, isZeroDuration, parseDuration, subtractDuration, TIER_RETENTION, validatePolicy } from './retention-policy.js';
export { isoWeek } from './retention-buckets.js';

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

/** restic's Snapshot.HasTags: all tags present; "" matches a snapshot without tags. */
function hasTags(s: Snapshot, list: string[]): boolean {
  for (const tag of list) {
    if (tag === '' && s.tags.length === 0) return true;
    if (!s.tags.includes(tag)) return false;
  }
  return true;
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
