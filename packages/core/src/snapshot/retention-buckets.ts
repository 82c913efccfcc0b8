/**
 * Retention buckets (retention.ts): restic's integer encodings of a
 * snapshot's hour, day, ISO week, month and year, in UTC.
 */
export type Bucker = (t: Date, nr: number) => number;
export const ymdh: Bucker = (t) => t.getUTCFullYear() * 1_000_000 + (t.getUTCMonth() + 1) * 10_000 + t.getUTCDate() * 100 + t.getUTCHours();
export const ymd: Bucker = (t) => t.getUTCFullYear() * 10_000 + (t.getUTCMonth() + 1) * 100 + t.getUTCDate();
export const yw: Bucker = (t) => {
  const { year, week } = isoWeek(t);
  return year * 100 + week;
};
export const ym: Bucker = (t) => t.getUTCFullYear() * 100 + (t.getUTCMonth() + 1);
export const y: Bucker = (t) => t.getUTCFullYear();
export const always: Bucker = (_t, nr) => nr;

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

