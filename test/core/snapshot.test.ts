import { describe, expect, it } from 'vitest';
import { byTime, emptyStats, fromHex, parseTime, pickAt, resolveSnapshot, Snapshot, toHex } from '@keep/core';
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
