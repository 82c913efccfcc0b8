import crypto from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  applyRetention,
  Decision,
  describePolicy,
  emptyStats,
  formatDuration,
  groupBySource,
  isEmptyPolicy,
  isoWeek,
  parseDuration,
  RetentionPolicy,
  Snapshot,
  subtractDuration,
  TIER_RETENTION,
} from '@keep/core';
import { expectKeepError } from './util.js';

/*
 * Expected sets below are written out by hand from the calendar, not computed
 * by a second implementation. Facts used: 2026-01-01 and 2026-12-31 are
 * Thursdays, so 2026 has 53 ISO weeks and 2026-W53 runs Monday 2026-12-28 to
 * Sunday 2027-01-03; 2027-01-04 (Monday) starts 2027-W01.
 */

const DAY = 86_400_000;
const HOUR = 3_600_000;

function snap(time: string, opts: { source?: string; tags?: string[] } = {}): Snapshot {
  const source = opts.source ?? 'db1:/var/lib/pg';
  const id = crypto.createHash('sha256').update(`${source}@${time}`).digest('hex');
  return { id, source, host: source.split(':')[0], time, root: '00'.repeat(32), tags: opts.tags ?? [], stats: emptyStats() };
}

const iso = (ms: number): string => new Date(ms).toISOString();
/** "YYYY-MM-DDTHH:MM": unique for every snapshot of the fixtures. */
const label = (s: Snapshot): string => s.time.slice(0, 16);
const kept = (ds: Decision[]): string[] => ds.filter((d) => d.keep).map((d) => label(d.snapshot));
const reasonsOf = (ds: Decision[], l: string): string[] => {
  const d = ds.find((x) => label(x.snapshot) === l);
  if (!d) throw new Error(`no snapshot ${l}`);
  return d.reasons;
};

/**
 * Two years of daily backups at 03:00 UTC, 2025-01-06 (Monday) to 2027-01-05
 * (Tuesday): 730 snapshots. Then an hourly burst on the last day (04:30 to
 * 09:30), three snapshots in the hour 10 (10:05, 10:20, 10:45 = newest), a
 * snapshot one millisecond before 2027, and two tagged manual ones.
 * 730 + 6 + 3 + 1 + 2 = 742 snapshots.
 */
function timeline(): Snapshot[] {
  const out: Snapshot[] = [];
  const start = Date.parse('2025-01-06T03:00:00.000Z');
  for (let i = 0; i < 730; i++) out.push(snap(iso(start + i * DAY)));
  for (let h = 4; h <= 9; h++) out.push(snap(`2027-01-05T0${h}:30:00.000Z`));
  for (const m of ['05', '20', '45']) out.push(snap(`2027-01-05T10:${m}:00.000Z`));
  out.push(snap('2026-12-31T23:59:59.999Z'));
  out.push(snap('2025-06-15T12:00:00.000Z', { tags: ['manual'] }));
  out.push(snap('2026-08-10T15:00:00.000Z', { tags: ['pre-upgrade', 'manual'] }));
  // input order must not matter: interleave
  return out.reverse().sort((a, b) => (a.id < b.id ? -1 : 1));
}

const NOW = Date.parse('2027-01-05T12:00:00.000Z');
const TL = timeline();

describe('retention: fixture sanity', () => {
  it('the timeline has 742 snapshots and decisions come back newest first', () => {
    expect(TL).toHaveLength(742);
    const ds = applyRetention(TL, { last: 1 }, NOW);
    expect(ds).toHaveLength(742);
    expect(label(ds[0].snapshot)).toBe('2027-01-05T10:45');
    expect(label(ds[741].snapshot)).toBe('2025-01-06T03:00');
    for (let i = 1; i < ds.length; i++) expect(ds[i - 1].snapshot.time >= ds[i].snapshot.time).toBe(true);
    expect(ds.filter((d) => !d.keep).every((d) => d.reasons.length === 0)).toBe(true);
  });

  it('ISO weeks across year boundaries', () => {
    expect(isoWeek(new Date('2027-01-03T12:00:00Z'))).toEqual({ year: 2026, week: 53 });
    expect(isoWeek(new Date('2027-01-04T00:00:00Z'))).toEqual({ year: 2027, week: 1 });
    expect(isoWeek(new Date('2026-12-28T00:00:00Z'))).toEqual({ year: 2026, week: 53 });
    expect(isoWeek(new Date('2024-12-30T00:00:00Z'))).toEqual({ year: 2025, week: 1 });
    expect(isoWeek(new Date('2021-01-01T00:00:00Z'))).toEqual({ year: 2020, week: 53 });
    expect(isoWeek(new Date('2025-01-06T03:00:00Z'))).toEqual({ year: 2025, week: 2 });
  });
});

describe('retention: count rules (restic keep-last/-hourly/-daily/-weekly/-monthly/-yearly)', () => {
  it('keep-last 5 keeps the five newest', () => {
    const ds = applyRetention(TL, { last: 5 }, NOW);
    expect(kept(ds)).toEqual(['2027-01-05T10:45', '2027-01-05T10:20', '2027-01-05T10:05', '2027-01-05T09:30', '2027-01-05T08:30']);
    expect(reasonsOf(ds, '2027-01-05T08:30')).toEqual(['last snapshot']);
  });

  it('keep-hourly 5: only the newest snapshot of an hour is kept', () => {
    const ds = applyRetention(TL, { hourly: 5 }, NOW);
    expect(kept(ds)).toEqual(['2027-01-05T10:45', '2027-01-05T09:30', '2027-01-05T08:30', '2027-01-05T07:30', '2027-01-05T06:30']);
    expect(reasonsOf(ds, '2027-01-05T10:20')).toEqual([]);
    expect(reasonsOf(ds, '2027-01-05T10:05')).toEqual([]);
  });

  it('keep-daily 7: the newest of each UTC day; 23:59:59.999 beats 03:00 on the last day of 2026', () => {
    const ds = applyRetention(TL, { daily: 7 }, NOW);
    expect(kept(ds)).toEqual([
      '2027-01-05T10:45',
      '2027-01-04T03:00',
      '2027-01-03T03:00',
      '2027-01-02T03:00',
      '2027-01-01T03:00',
      '2026-12-31T23:59',
      '2026-12-30T03:00',
    ]);
    expect(reasonsOf(ds, '2026-12-31T03:00')).toEqual([]);
  });

  it('keep-weekly 4: ISO weeks, 2027-01-03 is in 2026-W53 with 2026-12-28..31', () => {
    const ds = applyRetention(TL, { weekly: 4 }, NOW);
    expect(kept(ds)).toEqual(['2027-01-05T10:45', '2027-01-03T03:00', '2026-12-27T03:00', '2026-12-20T03:00']);
    // a calendar-year week would have kept 2026-12-31T23:59 as the last snapshot of 2026
    expect(reasonsOf(ds, '2026-12-31T23:59')).toEqual([]);
  });

  it('keep-monthly 12', () => {
    const ds = applyRetention(TL, { monthly: 12 }, NOW);
    expect(kept(ds)).toEqual([
      '2027-01-05T10:45',
      '2026-12-31T23:59',
      '2026-11-30T03:00',
      '2026-10-31T03:00',
      '2026-09-30T03:00',
      '2026-08-31T03:00',
      '2026-07-31T03:00',
      '2026-06-30T03:00',
      '2026-05-31T03:00',
      '2026-04-30T03:00',
      '2026-03-31T03:00',
      '2026-02-28T03:00',
    ]);
  });

  it('keep-yearly 3', () => {
    const ds = applyRetention(TL, { yearly: 3 }, NOW);
    expect(kept(ds)).toEqual(['2027-01-05T10:45', '2026-12-31T23:59', '2025-12-31T03:00']);
  });

  it('counts left at the oldest snapshot keep the oldest too (restic >= 0.16)', () => {
    const ds = applyRetention(TL, { yearly: 5 }, NOW);
    expect(kept(ds)).toEqual(['2027-01-05T10:45', '2026-12-31T23:59', '2025-12-31T03:00', '2025-01-06T03:00']);
    expect(reasonsOf(ds, '2025-01-06T03:00')).toEqual(['oldest yearly snapshot']);
    expect(reasonsOf(ds, '2025-12-31T03:00')).toEqual(['yearly snapshot']);

    const day = [snap('2026-05-01T01:00:00.000Z'), snap('2026-05-01T02:00:00.000Z'), snap('2026-05-01T03:00:00.000Z')];
    const d2 = applyRetention(day, { daily: 7 }, NOW);
    expect(kept(d2)).toEqual(['2026-05-01T03:00', '2026-05-01T01:00']);
    expect(d2.map((d) => d.reasons)).toEqual([['daily snapshot'], [], ['oldest daily snapshot']]);
  });

  it('-1 keeps every bucket', () => {
    expect(kept(applyRetention(TL, { last: -1 }, NOW))).toHaveLength(742);
    // 730 distinct days; the oldest snapshot is alone in its day, so no extra
    expect(kept(applyRetention(TL, { daily: -1 }, NOW))).toHaveLength(730);
    // 2025-01 .. 2027-01 = 25 months, plus the oldest (2025-01-06 shares January 2025 with the kept 2025-01-31)
    const m = applyRetention(TL, { monthly: -1 }, NOW);
    expect(kept(m)).toHaveLength(26);
    expect(kept(m).slice(-3)).toEqual(['2025-02-28T03:00', '2025-01-31T03:00', '2025-01-06T03:00']);
    const y = applyRetention(TL, { yearly: -1 }, NOW);
    expect(kept(y)).toEqual(['2027-01-05T10:45', '2026-12-31T23:59', '2025-12-31T03:00', '2025-01-06T03:00']);
  });

  it('last 3 + daily 7 + weekly 4 + monthly 6: the union, each with every reason', () => {
    const ds = applyRetention(TL, { last: 3, daily: 7, weekly: 4, monthly: 6 }, NOW);
    expect(kept(ds)).toEqual([
      '2027-01-05T10:45',
      '2027-01-05T10:20',
      '2027-01-05T10:05',
      '2027-01-04T03:00',
      '2027-01-03T03:00',
      '2027-01-02T03:00',
      '2027-01-01T03:00',
      '2026-12-31T23:59',
      '2026-12-30T03:00',
      '2026-12-27T03:00',
      '2026-12-20T03:00',
      '2026-11-30T03:00',
      '2026-10-31T03:00',
      '2026-09-30T03:00',
      '2026-08-31T03:00',
    ]);
    expect(reasonsOf(ds, '2027-01-05T10:45')).toEqual(['last snapshot', 'daily snapshot', 'weekly snapshot', 'monthly snapshot']);
    expect(reasonsOf(ds, '2027-01-05T10:20')).toEqual(['last snapshot']);
    expect(reasonsOf(ds, '2027-01-03T03:00')).toEqual(['daily snapshot', 'weekly snapshot']);
    expect(reasonsOf(ds, '2026-12-31T23:59')).toEqual(['daily snapshot', 'monthly snapshot']);
    expect(reasonsOf(ds, '2026-12-20T03:00')).toEqual(['weekly snapshot']);
    expect(reasonsOf(ds, '2026-08-31T03:00')).toEqual(['monthly snapshot']);
  });

  it('buckets are UTC days: 23:30Z and 00:30Z the next day are two dailies', () => {
    const s = [snap('2026-06-01T23:30:00.000Z'), snap('2026-06-02T00:30:00.000Z'), snap('2026-05-31T12:00:00.000Z')];
    expect(kept(applyRetention(s, { daily: 2 }, NOW, { timezone: 'UTC' }))).toEqual(['2026-06-02T00:30', '2026-06-01T23:30']);
  });

  it('equal times are ordered by id, descending, whatever the input order', () => {
    const a = { ...snap('2026-06-01T00:00:00.000Z'), id: 'aa'.repeat(32) };
    const b = { ...snap('2026-06-01T00:00:00.000Z'), id: 'bb'.repeat(32) };
    for (const input of [[a, b], [b, a]]) {
      const ds = applyRetention(input, { last: 1 }, NOW);
      expect(ds.map((d) => [d.snapshot.id.slice(0, 2), d.keep])).toEqual([
        ['bb', true],
        ['aa', false],
      ]);
    }
  });
});

describe('retention: keep-within (relative to the newest snapshot, calendar-aware)', () => {
  it('parses and formats restic durations', async () => {
    expect(parseDuration('1y2m3d4h')).toEqual({ years: 1, months: 2, days: 3, hours: 4 });
    expect(parseDuration(' 30d ')).toEqual({ years: 0, months: 0, days: 30, hours: 0 });
    expect(parseDuration('')).toEqual({ years: 0, months: 0, days: 0, hours: 0 });
    expect(formatDuration(parseDuration('2m1y'))).toBe('1y2m');
    expect(formatDuration(parseDuration('0y36h'))).toBe('36h');
    for (const bad of ['3w', '30', 'd', 'abc', '-1d', '1d-2h', '1.5d']) await expectKeepError(() => parseDuration(bad), 'INVALID_ARGUMENT');
  });

  it('subtracts like Go AddDate: months overflow into the next month', () => {
    expect(iso(subtractDuration(Date.parse('2026-03-31T00:00:00Z'), parseDuration('1m')))).toBe('2026-03-03T00:00:00.000Z');
    expect(iso(subtractDuration(Date.parse('2024-02-29T10:00:00Z'), parseDuration('1y')))).toBe('2023-03-01T10:00:00.000Z');
    expect(iso(subtractDuration(Date.parse('2027-01-05T10:45:00Z'), parseDuration('1y2m3d4h')))).toBe('2025-11-02T06:45:00.000Z');
    expect(iso(subtractDuration(Date.parse('2027-01-05T10:45:00Z'), parseDuration('30d')))).toBe('2026-12-06T10:45:00.000Z');
  });

  it('within 30d: everything after 2026-12-06T10:45 (newest minus 30 days)', () => {
    const ds = applyRetention(TL, { within: '30d' }, NOW);
    const k = kept(ds);
    // dailies 2026-12-07 .. 2027-01-05 (30) + 2026-12-31T23:59 + the 9 of the burst
    expect(k).toHaveLength(40);
    expect(k.slice(-3)).toEqual(['2026-12-09T03:00', '2026-12-08T03:00', '2026-12-07T03:00']);
    expect(reasonsOf(ds, '2026-12-07T03:00')).toEqual(['within 30d']);
    expect(reasonsOf(ds, '2026-12-06T03:00')).toEqual([]);
  });

  it('within 1m: after 2026-12-05T10:45', () => {
    const k = kept(applyRetention(TL, { within: '1m' }, NOW));
    expect(k).toHaveLength(41);
    expect(k[k.length - 1]).toBe('2026-12-06T03:00');
  });

  it('within 1y2m: after 2025-11-05T10:45', () => {
    const ds = applyRetention(TL, { within: '1y2m' }, NOW);
    const k = kept(ds);
    // dailies 2025-11-06 .. 2027-01-05: 25 + 31 + 365 + 5 = 426; + 2 irregular + 9 burst; 2025-06-15 is too old
    expect(k).toHaveLength(437);
    expect(k.slice(-2)).toEqual(['2025-11-07T03:00', '2025-11-06T03:00']);
    expect(k).toContain('2026-08-10T15:00');
    expect(k).not.toContain('2025-06-15T12:00');
    expect(reasonsOf(ds, '2026-08-10T15:00')).toEqual(['within 1y2m']);
  });

  it('the window is open: a snapshot exactly at newest minus D is not kept', () => {
    const s = [snap('2027-01-01T12:00:00.000Z'), snap('2027-01-02T12:00:00.000Z')];
    expect(kept(applyRetention(s, { within: '1d' }, NOW))).toEqual(['2027-01-02T12:00']);
    expect(kept(applyRetention(s, { within: '1d1h' }, NOW))).toEqual(['2027-01-02T12:00', '2027-01-01T12:00']);
  });

  it('future snapshots do not move the window; they are kept as within', () => {
    const s = [snap('2027-01-01T00:00:00.000Z'), snap('2027-01-02T00:00:00.000Z'), snap('2027-01-02T12:00:00.000Z'), snap('2027-03-01T00:00:00.000Z')];
    const now = Date.parse('2027-01-03T00:00:00.000Z');
    expect(kept(applyRetention(s, { within: '1d' }, now))).toEqual(['2027-03-01T00:00', '2027-01-02T12:00', '2027-01-02T00:00']);
    // nothing before now: restic measures from the zero time, so all are within
    expect(kept(applyRetention(s, { within: '1d' }, Date.parse('2026-01-01T00:00:00Z')))).toHaveLength(4);
  });

  it('within-daily 7d keeps the newest of each day in the window, within-weekly across the year end', () => {
    const ds = applyRetention(TL, { withinDaily: '7d' }, NOW);
    expect(kept(ds)).toEqual([
      '2027-01-05T10:45',
      '2027-01-04T03:00',
      '2027-01-03T03:00',
      '2027-01-02T03:00',
      '2027-01-01T03:00',
      '2026-12-31T23:59',
      '2026-12-30T03:00',
    ]);
    expect(reasonsOf(ds, '2027-01-04T03:00')).toEqual(['daily within 7d']);
    // window after 2026-12-15T10:45: weeks 2027-W01, 2026-W53, W52, W51 (12-16..12-20 inside)
    expect(kept(applyRetention(TL, { withinWeekly: '21d' }, NOW))).toEqual([
      '2027-01-05T10:45',
      '2027-01-03T03:00',
      '2026-12-27T03:00',
      '2026-12-20T03:00',
    ]);
  });

  it('within-hourly 3h: newest of each hour after 07:45', () => {
    const ds = applyRetention(TL, { withinHourly: '3h' }, NOW);
    expect(kept(ds)).toEqual(['2027-01-05T10:45', '2027-01-05T09:30', '2027-01-05T08:30']);
    expect(reasonsOf(ds, '2027-01-05T09:30')).toEqual(['hourly within 3h']);
  });
});

describe('retention: tags, protect, empty and invalid policies', () => {
  it('keep-tag: any entry; an entry "a,b" needs all its tags', () => {
    const ds = applyRetention(TL, { tags: ['manual'] }, NOW);
    expect(kept(ds)).toEqual(['2026-08-10T15:00', '2025-06-15T12:00']);
    expect(reasonsOf(ds, '2026-08-10T15:00')).toEqual(['has tags [manual]']);
    const both = applyRetention(TL, { tags: ['pre-upgrade,manual'] }, NOW);
    expect(kept(both)).toEqual(['2026-08-10T15:00']);
    expect(reasonsOf(both, '2026-08-10T15:00')).toEqual(['has tags [pre-upgrade, manual]']);
    const two = applyRetention(TL, { tags: ['pre-upgrade', 'manual'], last: 1 }, NOW);
    expect(kept(two)).toEqual(['2027-01-05T10:45', '2026-08-10T15:00', '2025-06-15T12:00']);
    expect(reasonsOf(two, '2026-08-10T15:00')).toEqual(['has tags [pre-upgrade]', 'has tags [manual]']);
  });

  it('protect: ids are kept whatever the policy, with their reason, and consume no counts', () => {
    const june = TL.find((s) => s.time === '2026-06-01T03:00:00.000Z')!;
    const newest = TL.find((s) => s.time === '2027-01-05T10:45:00.000Z')!;
    const ds = applyRetention(TL, { last: 2 }, NOW, { protect: new Set([june.id]) });
    expect(kept(ds)).toEqual(['2027-01-05T10:45', '2027-01-05T10:20', '2026-06-01T03:00']);
    expect(reasonsOf(ds, '2026-06-01T03:00')).toEqual(['protected']);
    const why = new Map([[newest.id, 'parent of an open session']]);
    const d2 = applyRetention(TL, { last: 1 }, NOW, { protect: why });
    expect(kept(d2)).toEqual(['2027-01-05T10:45']);
    expect(reasonsOf(d2, '2027-01-05T10:45')).toEqual(['last snapshot', 'protected: parent of an open session']);
  });

  it('isEmptyPolicy: restic refuses forget without a policy; applyRetention then keeps everything', () => {
    expect(isEmptyPolicy({})).toBe(true);
    expect(isEmptyPolicy({ daily: 0, last: 0 })).toBe(true);
    expect(isEmptyPolicy({ within: '0d', withinDaily: '' })).toBe(true);
    expect(isEmptyPolicy({ tags: [] })).toBe(true);
    expect(isEmptyPolicy({ last: -1 })).toBe(false);
    expect(isEmptyPolicy({ tags: ['x'] })).toBe(false);
    expect(isEmptyPolicy({ withinHourly: '1h' })).toBe(false);
    const ds = applyRetention(TL, {}, NOW);
    expect(ds.every((d) => d.keep && d.reasons[0] === 'policy is empty')).toBe(true);
    expect(applyRetention([], { last: 1 }, NOW)).toEqual([]);
  });

  it('refuses what restic forget refuses', async () => {
    const bad: RetentionPolicy[] = [{ daily: -2 }, { last: 1.5 }, { within: '-3d' }, { withinDaily: '3w' }, { monthly: Number.NaN }];
    for (const p of bad) await expectKeepError(() => applyRetention(TL, p, NOW), 'INVALID_ARGUMENT');
    await expectKeepError(() => applyRetention([{ ...snap('2026-01-01T00:00:00Z'), time: 'yesterday' }], { last: 1 }, NOW), 'INVALID_ARGUMENT');
  });

  it('describePolicy words it like restic', () => {
    expect(describePolicy({ last: 3, daily: 7, weekly: 4, monthly: 6 })).toBe('keep 3 latest, 7 daily, 4 weekly, 6 monthly snapshots');
    expect(describePolicy({ yearly: -1, withinDaily: '30d', within: '2m1y', tags: ['a,b', 'c'] })).toBe(
      'keep all yearly snapshots, daily snapshots within 30d and all snapshots with tags [[a, b] [c]] and all snapshots within 1y2m of the newest',
    );
    expect(describePolicy({})).toBe('remove');
  });

  it('groupBySource splits by source, first appearance first, input order kept', () => {
    const s = [snap('2026-01-02T00:00:00Z', { source: 'b:/x' }), snap('2026-01-01T00:00:00Z', { source: 'a:/y' }), snap('2026-01-01T00:00:00Z', { source: 'b:/x' })];
    const g = groupBySource(s);
    expect([...g.keys()]).toEqual(['b:/x', 'a:/y']);
    expect(g.get('b:/x')!.map((x) => x.time)).toEqual(['2026-01-02T00:00:00Z', '2026-01-01T00:00:00Z']);
    const perGroup = [...g.values()].map((list) => kept(applyRetention(list, { last: 1 }, NOW)));
    expect(perGroup).toEqual([['2026-01-02T00:00'], ['2026-01-01T00:00']]);
  });
});

describe('retention: tier presets on two years of hourly backups', () => {
  // every hour on the hour, 2025-01-06T00:00 .. 2027-01-05T23:00: 730 * 24 = 17520
  const hourly: Snapshot[] = [];
  const start = Date.parse('2025-01-06T00:00:00.000Z');
  for (let i = 0; i < 730 * 24; i++) hourly.push(snap(iso(start + i * HOUR), { source: 'tiers:/data' }));
  const now = Date.parse('2027-01-06T00:00:00.000Z');

  it('critical: one per hour for 180 days (after 2026-07-09T23:00)', () => {
    const k = kept(applyRetention(hourly, TIER_RETENTION.critical, now));
    expect(hourly).toHaveLength(17520);
    expect(k).toHaveLength(180 * 24);
    expect(k[0]).toBe('2027-01-05T23:00');
    expect(k[k.length - 1]).toBe('2026-07-10T00:00');
  });

  it('high: all for 5 days (120) and the 23:00 of each day for 30 days (25 more)', () => {
    const ds = applyRetention(hourly, TIER_RETENTION.high, now);
    const k = kept(ds);
    expect(k).toHaveLength(145);
    expect(k[119]).toBe('2027-01-01T00:00');
    expect(k.slice(120, 122)).toEqual(['2026-12-31T23:00', '2026-12-30T23:00']);
    expect(k[k.length - 1]).toBe('2026-12-07T23:00');
    expect(reasonsOf(ds, '2027-01-05T23:00')).toEqual(['within 5d', 'daily within 30d']);
  });

  it('standard: all for 7 days', () => {
    const k = kept(applyRetention(hourly, TIER_RETENTION.standard, now));
    expect(k).toHaveLength(168);
    expect(k[k.length - 1]).toBe('2026-12-30T00:00');
  });

  it('lower: all for 7 days and one per ISO week for 28 days', () => {
    const ds = applyRetention(hourly, TIER_RETENTION.lower, now);
    const k = kept(ds);
    expect(k).toHaveLength(171);
    expect(k.slice(-3)).toEqual(['2026-12-27T23:00', '2026-12-20T23:00', '2026-12-13T23:00']);
    expect(ds.filter((d) => d.reasons.includes('weekly within 28d')).map((d) => label(d.snapshot))).toEqual([
      '2027-01-05T23:00',
      '2027-01-03T23:00',
      '2026-12-27T23:00',
      '2026-12-20T23:00',
      '2026-12-13T23:00',
    ]);
  });

  it('presets are frozen and none is empty', () => {
    for (const p of Object.values(TIER_RETENTION)) expect(isEmptyPolicy(p)).toBe(false);
    expect(Object.isFrozen(TIER_RETENTION.critical)).toBe(true);
  });
});
