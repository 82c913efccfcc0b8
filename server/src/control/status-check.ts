import type { HeldState, WatchMeta } from './watch-store.js';

/** Monitoring-plugin exit codes (Nagios, Icinga). */
export const CHECK_CODES = { OK: 0, WARNING: 1, CRITICAL: 2, UNKNOWN: 3 } as const;
export type CheckStatus = keyof typeof CHECK_CODES;

/** An evaluation older than this many watchdog intervals means no keepd is watching: UNKNOWN. */
export const STALE_INTERVALS = 3;

/**
 * `keepd status --check`: the worst held state decides (severity 2
 * CRITICAL, 1 WARNING); no evaluation ever, or none within
 * STALE_INTERVALS intervals (keepd down or its watchdog stuck), is
 * UNKNOWN. One line: "KEEP CRITICAL - source db missed, ...".
 */
export function checkSummary(states: HeldState[], meta: WatchMeta | undefined, now: number): { status: CheckStatus; code: number; line: string } {
  const done = (status: CheckStatus, text: string) => ({ status, code: CHECK_CODES[status], line: `KEEP ${status} - ${text}` });
  if (!meta) return done('UNKNOWN', 'no watchdog evaluation recorded (is keepd serve running?)');
  const age = now - meta.evaluated_ms;
  if (age > STALE_INTERVALS * meta.interval_ms) return done('UNKNOWN', `the watchdog last evaluated ${Math.round(age / 1000)} s ago (interval ${meta.interval_ms / 1000} s): keepd is not watching`);
  const bad = states.filter((s) => s.severity > 0).sort((a, b) => b.severity - a.severity);
  const sources = states.filter((s) => s.kind === 'source').length;
  if (bad.length === 0) return done('OK', `${sources} source(s) ok; storage, replicas and maintenance ok`);
  const worst = bad[0].severity === 2 ? 'CRITICAL' : 'WARNING';
  return done(worst, bad.map((s) => `${s.kind} ${s.name} ${s.state}`).join(', '));
}
