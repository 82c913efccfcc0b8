/**
 * keepd's drill judgement as pure functions of stored drill events
 * (server control/drill-view.ts, evaluate.ts): the RTO estimate's
 * extrapolation, and each drill condition (failed, rto_exceeded, overdue,
 * ok, pending) with its severity.
 */
import { describe, expect, it } from 'vitest';
import { PG_WAL_TAG, type Snapshot } from '@keep/core';
import type { StoredDrill } from '@keep/server/dist/drills.js';
import { drillView, rtoEstimateMs } from '@keep/server/dist/control/drill-view.js';
import { drillCondition } from '@keep/server/dist/control/evaluate.js';

const DAY = 86_400_000;
const NOW = Date.parse('2026-12-01T00:00:00Z');

function drill(o: Partial<StoredDrill> = {}): StoredDrill {
  return { id: 'ab'.repeat(16), source: 'db', snapshot: 'cd'.repeat(16), kind: 'files', mode: 'write', result: 'success', start_ms: 1, end_ms: 2, duration_ms: 12_000, setup_ms: 2_000, files: 10, bytes: 100_000_000, files_verified: 10, verify_failures: 0, received_ms: NOW - DAY, ...o };
}

const snap = (bytes: number, at: number, tags: string[] = []) => ({ id: 'ef'.repeat(16), source: 'db', tags, time: new Date(at).toISOString(), server_time: new Date(at).toISOString(), stats: { bytes } }) as unknown as Snapshot;

describe('drill figures and conditions', () => {
  it('extrapolates: measured start-up + the current size at the measured rate', () => {
    // 100 MB in 10 s of transfer: 10 MB/s; 300 MB now -> 2 s + 30 s
    expect(rtoEstimateMs(drill(), 300_000_000)).toBe(32_000);
    // an empty snapshot's drill measured only start-up: its whole time
    expect(rtoEstimateMs(drill({ bytes: 0 }), 300_000_000)).toBe(12_000);
    const v = drillView({ source: 'db', origin: 'none', tier: 'critical' }, [drill()], [snap(300_000_000, NOW - 2 * DAY)]);
    expect(v).toMatchObject({ rto_estimate_ms: 32_000, rto_target_ms: 15 * 60_000, interval_ms: 7 * DAY, rate_bytes_s: 10_000_000, configured: false });
    // a newer WAL segment (a snapshot of the source too) is not what a restore starts from: same estimate
    const withWal = drillView({ source: 'db', origin: 'none', tier: 'critical' }, [drill()], [snap(300_000_000, NOW - DAY), snap(16 * 1024 * 1024, NOW, [PG_WAL_TAG])]);
    expect(withWal.current_bytes).toBe(300_000_000);
  });

  it('failed outranks an RTO miss, which outranks overdue; a configured source never drilled is overdue after its interval', () => {
    const policy = { source: 'db', origin: 'none' as const, drill: { interval: 2 * DAY, rto: 20_000 } };
    const snaps = [snap(300_000_000, NOW - 10 * DAY)];
    const at = (history: StoredDrill[]) => drillCondition(drillView(policy, history, snaps), NOW, NOW - 10 * DAY);
    expect(at([drill(), drill({ result: 'failure', error_class: 'CORRUPT' })])).toMatchObject({ kind: 'drill', state: 'failed', severity: 2 });
    expect(at([drill()])).toMatchObject({ state: 'rto_exceeded', severity: 1, detail: { rto_estimate_s: 32, rto_target_s: 20 } });
    expect(at([drill({ bytes: 300_000_000, received_ms: NOW - 3 * DAY })])).toMatchObject({ state: 'overdue', severity: 1 });
    expect(at([drill({ bytes: 300_000_000 })])).toMatchObject({ state: 'ok', severity: 0 });
    expect(at([])).toMatchObject({ state: 'overdue', severity: 1 });
    expect(drillCondition(drillView(policy, [], snaps), NOW, NOW - DAY)).toMatchObject({ state: 'pending', severity: 0 });
  });
});
