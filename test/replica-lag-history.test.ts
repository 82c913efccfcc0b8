/**
 * Issue 19: a replica's lag over time. Reports that change what a replica
 * holds are stored as events in state.mdb (real LMDB, keepd's clock moved by
 * hand), only changes, pruned after 35 days but for the state at the cutoff;
 * the lag at a past time comes from lagAt, the function the watchdog uses now.
 */
import path from 'node:path';
import { emptyStats, ManualClock, Repository, type Snapshot } from '@keep/core';
import { lagAt, lagHistory } from '@keep/server/dist/control/replica-lag.js';
import { REPLICA_REPORTS_KEPT_MS, ReplicaHistory } from '@keep/server/dist/replica-history.js';
import { afterAll, describe, expect, it } from 'vitest';
import { tempDirs } from './helpers.js';

const tmp = tempDirs();
const T0 = Date.parse('2026-11-01T00:00:00Z');
const iso = (ms: number) => new Date(ms).toISOString();
const snap = (id: string, at: number): Snapshot => ({ id, source: 'db', host: 'h', time: iso(at), server_time: iso(at + 500), root: '00'.repeat(32), tags: [], stats: emptyStats() });

describe('replica lag over time', () => {
  const s1 = snap('s1', T0 + 1000);
  const s2 = snap('s2', T0 + 5000);

  it('lagAt a past time counts only snapshots recorded by then; now it is the watchdog\'s lag', () => {
    expect(lagAt([s1, s2], s1.time, T0 + 4000)).toBe(0); // s2 not here yet
    expect(lagAt([s1, s2], s1.time, T0 + 9000)).toBe(4000); // s2 here for 4 s, the replica lacks it
    expect(lagAt([s1, s2], s2.time, T0 + 9000)).toBe(0);
    expect(lagAt([s1, s2], undefined, T0 + 9000)).toBe(8000); // holds nothing: since the oldest
  });

  it('draws the sawtooth from the reports: growing while behind, dropping at the report that catches up', () => {
    const reports = [
      { at_ms: T0 + 2000, newest_time: s1.time },
      { at_ms: T0 + 8000, newest_time: s2.time },
    ];
    expect(lagHistory([s1, s2], reports, T0, T0 + 10_000)).toEqual([
      { at_ms: T0 + 2000, lag_ms: 0 },
      { at_ms: T0 + 5000, lag_ms: 0 },
      { at_ms: T0 + 7999, lag_ms: 2999 },
      { at_ms: T0 + 8000, lag_ms: 0 },
      { at_ms: T0 + 10_000, lag_ms: 0 },
    ]);
    expect(lagHistory([s1, s2], [], T0, T0 + 10_000)).toEqual([]);
  });

  describe('stored reports', () => {
    const clock = new ManualClock(T0);
    let repo: Repository;
    afterAll(async () => repo?.close());

    it('keeps only changes, and after 35 days only the state at the cutoff', async () => {
      repo = await Repository.init(path.join(tmp.make('keep-replica-history-'), 'repo'), { clock });
      const h = new ReplicaHistory(repo, clock);
      await h.record('aa'.repeat(8), s1.time);
      clock.advance(60_000);
      await h.record('aa'.repeat(8), s1.time); // the same holding: no event
      await h.record('aa'.repeat(8), undefined); // nothing reported: nothing stored
      await h.record('bb'.repeat(8), s1.time); // another replica: its own events
      expect(h.of('aa'.repeat(8))).toEqual([{ at_ms: T0, newest_time: s1.time }]);
      clock.advance(60_000);
      await h.record('aa'.repeat(8), s2.time);
      expect(h.of('aa'.repeat(8)).map((r) => r.newest_time)).toEqual([s1.time, s2.time]);
      // 35 days on: both are past the cutoff, the newer one is what it held at the cutoff and stays
      clock.advance(REPLICA_REPORTS_KEPT_MS + 1000);
      await h.record('aa'.repeat(8), s2.time);
      expect(h.of('aa'.repeat(8))).toEqual([{ at_ms: T0 + 120_000, newest_time: s2.time }]);
      expect(h.of('bb'.repeat(8))).toHaveLength(1);
    });
  });
});
