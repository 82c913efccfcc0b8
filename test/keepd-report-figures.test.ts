/**
 * The report's two time-share rules (server/src/report/rpo-compliance.ts) on
 * sequences with known answers: RPO compliance from snapshot times, and the
 * share of a window a replica spent within its RPO from the watchdog's
 * transitions. keepd-report.test.ts checks the same figures end to end.
 */
import { describe, expect, it } from 'vitest';
import { rpoCompliance, stateShare } from '@keep/server/dist/report/rpo-compliance.js';

const H = 3600_000;

describe('report figures', () => {
  it('RPO compliance: each snapshot covers min(RPO, the gap to the next), from the first snapshot or the window start', () => {
    // snapshots at 0, 2h, 2.5h; RPO 1h; window 0..4h: covered 1h + 0.5h + 1h of 4h
    expect(rpoCompliance([0, 2 * H, 2.5 * H], H, 0, 4 * H)).toEqual({ within_ms: 2.5 * H, measured_ms: 4 * H, share: 0.625 });
    // the window opens at 1.5h: the first snapshot is 1.5h old then (late); measured 2.5h
    expect(rpoCompliance([0, 2 * H, 2.5 * H], H, 1.5 * H, 4 * H)).toEqual({ within_ms: 1.5 * H, measured_ms: 2.5 * H, share: 0.6 });
    // a window from before the first backup measures from that backup
    expect(rpoCompliance([10 * H], H, 0, 10.5 * H)).toEqual({ within_ms: 0.5 * H, measured_ms: 0.5 * H, share: 1 });
    // a snapshot after the window's end does not count; none at all measures nothing
    expect(rpoCompliance([5 * H], H, 0, 4 * H).share).toBeNull();
    expect(rpoCompliance([], H, 0, 4 * H)).toEqual({ within_ms: 0, measured_ms: 0, share: null });
  });

  it('replica lag: the state at the window start is the last transition before it; before the first, nothing is measured', () => {
    const t = [
      { at_ms: 1 * H, to: 'ok' },
      { at_ms: 3 * H, to: 'lagging' },
      { at_ms: 4 * H, to: 'ok' },
    ];
    const ok = (s: string) => s === 'ok';
    expect(stateShare(t, ok, 0, 5 * H)).toEqual({ within_ms: 3 * H, measured_ms: 4 * H, share: 0.75 });
    expect(stateShare(t, ok, 3.5 * H, 5 * H)).toEqual({ within_ms: 1 * H, measured_ms: 1.5 * H, share: 0.6667 });
    expect(stateShare([], ok, 0, 5 * H).share).toBeNull();
  });
});
