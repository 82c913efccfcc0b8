import { describe, expect, it } from 'vitest';
import { byTime, checkCommitTime, emptyStats, fromHex, judgeSnapshots, MAX_CLOCK_SKEW_MS, parseTime, pickAt, recordedTime, resolveSnapshot, sealSnapshot, Snapshot, toHex, verifySnapshot } from '@keep/core';
import { expectKeepError } from './util.js';

const snap = (id: string, time: string): Snapshot => ({ id, source: '/s', host: 'h', time, root: '00'.repeat(32), tags: [], stats: emptyStats() });

describe('snapshot helpers', () => {
  const list = [
    snap('aaaa1111' + '0'.repeat(24), '2026-01-01T00:00:00.000Z'),
    snap('bbbb2222' + '0'.repeat(24), '2026-01-02T00:00:00.000Z'),
    snap('bbbb3333' + '0'.repeat(24), '2026-01-03T00:00:00.000Z'),
  ];

  it('byTime orders by time, then id', () => {
    const a = snap('b'.repeat(32), '2026-01-01T00:00:00.000Z');
    const b = snap('a'.repeat(32), '2026-01-01T00:00:00.000Z');
    const c = snap('0'.repeat(32), '2025-12-31T23:59:59.999Z');
    expect([a, b, c].sort(byTime).map((s) => s.id[0])).toEqual(['0', 'a', 'b']);
  });

  it('resolveSnapshot: latest, full id, unique prefix; errors otherwise', async () => {
    expect(resolveSnapshot(list, 'latest')).toBe(list[2]);
    expect(resolveSnapshot(list, list[1].id)).toBe(list[1]);
    expect(resolveSnapshot(list, 'aaaa')).toBe(list[0]);
    expect(resolveSnapshot(list, 'bbbb3')).toBe(list[2]);
    expect((await expectKeepError(() => resolveSnapshot(list, 'bbbb'), 'INVALID_ARGUMENT')).message).toMatch(/ambiguous/);
    await expectKeepError(() => resolveSnapshot(list, 'abc'), 'INVALID_ARGUMENT');
    await expectKeepError(() => resolveSnapshot(list, 'ABCD'), 'INVALID_ARGUMENT');
    await expectKeepError(() => resolveSnapshot(list, 'cccc'), 'NOT_FOUND');
    await expectKeepError(() => resolveSnapshot([], 'latest'), 'NOT_FOUND');
  });

  it('pickAt gives the newest snapshot at or before a time', () => {
    expect(pickAt(list, parseTime('2025-12-31T00:00:00Z'))).toBeUndefined();
    expect(pickAt(list, parseTime('2026-01-01T00:00:00Z'))).toBe(list[0]);
    expect(pickAt(list, parseTime('2026-01-02T12:00:00+02:00'))).toBe(list[1]);
    expect(pickAt(list, parseTime('2030-01-01T00:00:00Z'))).toBe(list[2]);
  });

  it('parseTime refuses what is not a time', async () => {
    expect(parseTime('2026-11-23T10:00:00Z')).toBe(Date.UTC(2026, 10, 23, 10));
    await expectKeepError(() => parseTime('yesterday'), 'INVALID_ARGUMENT');
  });

  it('ids: hex round-trip; fromHex refuses anything but 64 lowercase hex digits', async () => {
    const id = Buffer.from('0123456789abcdef'.repeat(4), 'hex');
    expect(toHex(id)).toBe('0123456789abcdef'.repeat(4));
    expect(fromHex(toHex(id)).equals(id)).toBe(true);
    // toHex of a view covers the view only.
    const big = Buffer.concat([Buffer.alloc(5, 0xff), id, Buffer.alloc(5, 0xee)]);
    expect(toHex(big.subarray(5, 37))).toBe(toHex(id));
    for (const bad of ['0123', 'ABCDEF'.padEnd(64, '0'), 'g'.repeat(64), '0'.repeat(65)]) await expectKeepError(() => fromHex(bad), 'INVALID_ARGUMENT');
  });
});

describe('snapshot records: MAC (auth.ts) and recorded time', () => {
  const keyA = Buffer.alloc(32, 1);
  const keyB = Buffer.alloc(32, 2);
  const base = { source: 'db', host: 'h1', time: '2026-01-01T00:00:00.000Z', root: 'ab'.repeat(32), tags: ['x', 'y'], tier: 'high', stats: { ...emptyStats(), files: 3, duration_s: 1.25 } };

  it('sealSnapshot picks an id and normalizes; every field it chose is covered, the key and the id too', () => {
    const s = sealSnapshot(keyA, { ...base, time: '2026-01-01T01:00:00+01:00', stats: { ...base.stats, bytes: 7.4, dirs: -1 } });
    expect(s.id).toMatch(/^[0-9a-f]{32}$/);
    expect(s.time).toBe('2026-01-01T00:00:00.000Z');
    expect(s.stats).toMatchObject({ bytes: 7, dirs: 0, files: 3, duration_s: 1.25 });
    const rec: Snapshot = { ...s, server_time: '2026-01-01T00:00:01.000Z' };
    expect(verifySnapshot(keyA, rec)).toEqual({ state: 'authentic' });
    expect(verifySnapshot(keyB, rec).state).toBe('forged');
    const edits: Partial<Snapshot>[] = [{ id: 'cd'.repeat(16) }, { source: 'other' }, { host: 'h2' }, { time: '2026-01-01T00:00:00.001Z' }, { parent: 'ef'.repeat(16) }, { root: 'cd'.repeat(32) }, { tags: ['y', 'x'] }, { tags: ['x'] }, { tier: 'critical' }, { stats: { ...s.stats, files: 4 } }, { mac: 'zz' }];
    for (const e of edits) expect(verifySnapshot(keyA, { ...rec, ...e }).state, JSON.stringify(e)).toBe('forged');
    const { mac: _mac, ...bare } = rec;
    expect(verifySnapshot(keyA, bare)).toEqual({ state: 'unauthenticated' });
  });

  it("keepd's recorded time may be later than the snapshot's by any amount, earlier only by the skew bound", () => {
    const s = sealSnapshot(keyA, base);
    const at = (ms: number) => new Date(Date.parse(base.time) + ms).toISOString();
    expect(verifySnapshot(keyA, { ...s, server_time: at(30 * 86_400_000) }).state).toBe('authentic');
    expect(verifySnapshot(keyA, { ...s, server_time: at(-MAX_CLOCK_SKEW_MS) }).state).toBe('authentic');
    const late = verifySnapshot(keyA, { ...s, server_time: at(-MAX_CLOCK_SKEW_MS - 1000) });
    expect(late.state === 'forged' && late.reason).toMatch(/301 s before its own time.*rewritten/);
    // recordedTime: the earlier of the two, so a later server_time never moves a snapshot forward.
    expect(recordedTime({ time: base.time, server_time: at(3_600_000) })).toBe(Date.parse(base.time));
    expect(recordedTime({ time: at(240_000), server_time: base.time })).toBe(Date.parse(base.time));
    expect(recordedTime({ time: base.time })).toBe(Date.parse(base.time));
  });

  it('judgeSnapshots: a record without a MAC is forged once its source has an older authenticated one', () => {
    const s = { ...sealSnapshot(keyA, base) };
    const old = { ...base, id: '11'.repeat(16), time: '2025-12-31T00:00:00.000Z' };
    const newer = { ...base, id: '22'.repeat(16), time: '2026-01-02T00:00:00.000Z' };
    const otherSource = { ...newer, id: '33'.repeat(16), source: 'files' };
    const j = judgeSnapshots(keyA, [old, s, newer, otherSource]).map((x) => x.auth.state);
    expect(j).toEqual(['unauthenticated', 'authentic', 'forged', 'unauthenticated']);
  });

  it('checkCommitTime: ahead or behind by more than the bound is refused, with the skew in seconds', async () => {
    const now = Date.parse('2026-06-01T12:00:00.000Z');
    const iso = (ms: number) => new Date(now + ms).toISOString();
    checkCommitTime(iso(MAX_CLOCK_SKEW_MS), now, now);
    checkCommitTime(iso(-MAX_CLOCK_SKEW_MS), now, now);
    checkCommitTime(iso(-86_400_000), now); // no session start: only "ahead" is checked
    expect((await expectKeepError(() => checkCommitTime(iso(365 * 86_400_000), now), 'INVALID_ARGUMENT')).message).toMatch(/your clock is 31536000 s ahead/);
    expect((await expectKeepError(() => checkCommitTime(iso(-3_600_000), now, now), 'INVALID_ARGUMENT')).message).toMatch(/your clock is 3600 s behind/);
  });
});
