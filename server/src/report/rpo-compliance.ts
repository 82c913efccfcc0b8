/**
 * RPO compliance over a window, from the sequence of a source's snapshot
 * times (keepd's recorded times): at any instant t the source's age is t
 * minus the newest snapshot recorded at or before t, and t is "within RPO"
 * when that age is at most the RPO. So each snapshot at s covers
 * [s, min(s + rpo, next snapshot)], clipped to the window. The measured span
 * starts at the window's start, or at the source's first snapshot when that
 * is later (before its first backup keepd did not know the source); the
 * share is covered time over measured time.
 */
export interface RpoCompliance {
  /** ms of the measured span during which the age was within the RPO */
  within_ms: number;
  /** ms measured: from max(window start, first snapshot) to the window's end */
  measured_ms: number;
  /** within / measured, 4 decimals; null when nothing was measured */
  share: number | null;
}

export function rpoCompliance(times: number[], rpoMs: number, startMs: number, endMs: number): RpoCompliance {
  const sorted = [...times].filter((t) => t <= endMs).sort((a, b) => a - b);
  if (sorted.length === 0) return { within_ms: 0, measured_ms: 0, share: null };
  const from = Math.max(startMs, sorted[0]);
  let within = 0;
  sorted.forEach((t, i) => {
    const next = i + 1 < sorted.length ? sorted[i + 1] : endMs;
    const covered = Math.min(t + rpoMs, next, endMs) - Math.max(t, from);
    if (covered > 0) within += covered;
  });
  const measured = endMs - from;
  return { within_ms: within, measured_ms: measured, share: measured > 0 ? Math.round((within / measured) * 10_000) / 10_000 : null };
}

/**
 * The share of a window a watched subject spent in a good state, from the
 * watchdog's transitions (at_ms, to): the state at the window's start is
 * the last transition before it; time before the first transition is not
 * measured (the watchdog had not judged the subject yet).
 */
export function stateShare(transitions: { at_ms: number; to: string }[], good: (state: string) => boolean, startMs: number, endMs: number): RpoCompliance {
  const sorted = [...transitions].filter((t) => t.at_ms <= endMs).sort((a, b) => a.at_ms - b.at_ms);
  if (sorted.length === 0) return { within_ms: 0, measured_ms: 0, share: null };
  let within = 0;
  let measured = 0;
  sorted.forEach((t, i) => {
    const from = Math.max(t.at_ms, startMs);
    const to = i + 1 < sorted.length ? sorted[i + 1].at_ms : endMs;
    if (to <= from) return;
    measured += to - from;
    if (good(t.to)) within += to - from;
  });
  return { within_ms: within, measured_ms: measured, share: measured > 0 ? Math.round((within / measured) * 10_000) / 10_000 : null };
}
