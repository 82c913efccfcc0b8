import crypto from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { canonicalSnapshot, checkReplacement, deriveKeys, emptyStats, groupSnapshots, openMeta, parseGroupBy, pathsGroupOf, sealMeta, sealSnapshot, Snapshot, verifySnapshot } from '@keep/core';
import { expectKeepError } from './util.js';

const keys = deriveKeys(crypto.randomBytes(32));
const other = deriveKeys(crypto.randomBytes(32));
const base = { source: 's', host: 'h', time: '2026-01-01T00:00:00.000Z', root: '00'.repeat(32), tags: ['a'], stats: emptyStats() };

describe('sealed snapshot metadata (paths, user) and the keyed paths group', () => {
  it('seals and opens under the key; another key or a flipped byte opens nothing', () => {
    const m = sealMeta(keys, { paths: ['/home', '/etc', '/home'], username: 'alice' });
    expect(openMeta(keys, m)).toEqual({ paths: ['/etc', '/home'], username: 'alice' });
    expect(Buffer.from(m.sealed_meta, 'base64').toString('latin1')).not.toContain('/etc');
    expect(openMeta(other, m)).toBeUndefined();
    const b = Buffer.from(m.sealed_meta, 'base64');
    b[20] ^= 1;
    expect(openMeta(keys, { sealed_meta: b.toString('base64') })).toBeUndefined();
    expect(openMeta(keys, {})).toEqual({ paths: [], username: '' });
  });

  it('paths_group: one value per path set (order and repeats aside), another per key; none for no paths', () => {
    const g = pathsGroupOf(keys, ['/etc', '/home']);
    expect(g).toMatch(/^[0-9a-f]{32}$/);
    expect(pathsGroupOf(keys, ['/home', '/etc', '/etc'])).toBe(g);
    expect(pathsGroupOf(keys, ['/etc'])).not.toBe(g);
    expect(pathsGroupOf(other, ['/etc', '/home'])).not.toBe(g);
    expect(pathsGroupOf(keys, [])).toBeUndefined();
  });

  it('the MAC covers the new fields; a record without them keeps its old canonical form', () => {
    const old = sealSnapshot(keys.snapshotMacKey, base);
    expect(JSON.parse(canonicalSnapshot(old).toString())).toHaveLength(10);
    expect(verifySnapshot(keys.snapshotMacKey, old as Snapshot).state).toBe('authentic');
    const s = sealSnapshot(keys.snapshotMacKey, { ...base, ...sealMeta(keys, { paths: ['/etc'], username: 'u' }) }) as Snapshot;
    expect(verifySnapshot(keys.snapshotMacKey, s).state).toBe('authentic');
    const moved = sealMeta(keys, { paths: ['/home'], username: 'u' });
    expect(verifySnapshot(keys.snapshotMacKey, { ...s, paths_group: moved.paths_group }).state).toBe('forged');
    expect(verifySnapshot(keys.snapshotMacKey, { ...s, sealed_meta: moved.sealed_meta }).state).toBe('forged');
    expect(verifySnapshot(keys.snapshotMacKey, { ...s, original: 'ab'.repeat(16) }).state).toBe('forged');
  });
});

describe('grouping and rewrites', () => {
  const rec = (id: string, source: string, group: string | undefined, tags: string[]): Snapshot => ({ ...base, id, source, tags, ...(group ? { paths_group: group } : {}) });

  it('parseGroupBy: a comma list of source, paths, tags; default source,paths; host and others refused', async () => {
    expect(parseGroupBy(undefined)).toEqual(['source', 'paths']);
    expect(parseGroupBy('tags, source,tags')).toEqual(['tags', 'source']);
    expect(parseGroupBy('')).toEqual([]);
    expect((await expectKeepError(() => parseGroupBy('host'), 'INVALID_ARGUMENT')).message).toMatch(/source/);
    await expectKeepError(() => parseGroupBy('paths,colour'), 'INVALID_ARGUMENT');
  });

  it('groupSnapshots keys by the fields asked for, in order of first appearance', () => {
    const list = [rec('1', 'a', 'p1', ['x']), rec('2', 'a', 'p2', []), rec('3', 'b', 'p1', ['x']), rec('4', 'a', 'p1', ['x']), rec('5', 'a', undefined, [])];
    expect(groupSnapshots(list, ['source', 'paths']).map((g) => [g.key, g.snapshots.map((s) => s.id)])).toEqual([
      [{ source: 'a', paths_group: 'p1' }, ['1', '4']],
      [{ source: 'a', paths_group: 'p2' }, ['2']],
      [{ source: 'b', paths_group: 'p1' }, ['3']],
      [{ source: 'a', paths_group: '' }, ['5']],
    ]);
    expect(groupSnapshots(list, ['tags']).map((g) => g.snapshots.length)).toEqual([3, 2]);
    expect(groupSnapshots(list, [])).toHaveLength(1);
  });

  it('checkReplacement lets a rewrite change only id, tags, MAC and original', async () => {
    const old = { ...sealSnapshot(keys.snapshotMacKey, base), server_time: '2026-01-01T00:00:01.000Z' } as Snapshot;
    const next = sealSnapshot(keys.snapshotMacKey, { ...base, tags: ['b'], original: old.id });
    expect(() => checkReplacement(old, next)).not.toThrow();
    for (const bad of [{ time: '2025-01-01T00:00:00.000Z' }, { root: '11'.repeat(32) }, { source: 't' }, { original: undefined }, { id: old.id }]) {
      await expectKeepError(() => checkReplacement(old, { ...next, ...bad }), 'INVALID_ARGUMENT');
    }
  });
});
