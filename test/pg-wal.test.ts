/**
 * The PostgreSQL catalog logic without a server: WAL names and positions,
 * which WAL retention may drop, the recovery window, and how a restore picks
 * its base backup and walks the archive (time semantics, gaps, timelines).
 * test/pg-pitr.test.ts drives the same code against a real PostgreSQL.
 */
import { describe, expect, it } from 'vitest';
import { emptyStats, formatLsn, parseLsn, parseWalName, pgCatalog, pitrWindow, segmentName, segmentNo, segmentNoOf, Snapshot, unneededWal } from '@keep/core';
import { planRestore } from '@keep/agent/dist/pg/restore.js';
import { parseBackupLabel, pgdataExclude } from '@keep/agent/dist/pg/base-backup.js';
import { walSystemId } from '@keep/agent/dist/pg/wal.js';

const MiB = 1024 * 1024;
let n = 0;
const T0 = Date.parse('2026-11-23T10:00:00Z');
const at = (s: number) => T0 + s * 1000;
const iso = (ms: number) => new Date(ms).toISOString();

function snap(tags: string[], time: number): Snapshot {
  return { id: (++n).toString(16).padStart(32, '0'), source: 'db', host: 'h', time: iso(time), root: '00'.repeat(32), tags, stats: emptyStats() };
}

function wal(name: string, time: number): Snapshot {
  const tli = parseInt(name.slice(0, 8), 16);
  return snap(['pg-wal', `wal:${name}`, `timeline:${tli}`], time);
}

/** A base backup on `tli` from segment `start` to `stop` (numbers), taken at s..e seconds. */
function baseBackup(tli: number, start: number, stop: number, s: number, e: number): Snapshot {
  const startWal = segmentName(tli, BigInt(start), 16 * MiB);
  return snap(
    ['pg-base', `timeline:${tli}`, `start-lsn:0/${(start * 16 * MiB + 40).toString(16).toUpperCase()}`, `stop-lsn:0/${(stop * 16 * MiB + 256).toString(16).toUpperCase()}`, `start-wal:${startWal}`, `stop-wal:${segmentName(tli, BigInt(stop), 16 * MiB)}`, `stop-time:${iso(at(e))}`, `wal-segsize:${16 * MiB}`],
    at(s),
  );
}

const seg = (tli: number, no: number) => segmentName(tli, BigInt(no), 16 * MiB);
const noHistory = async () => {
  throw new Error('no history expected');
};

describe('WAL names and positions', () => {
  it('names segments like PostgreSQL (XLogFileName) for any segment size', () => {
    expect(segmentName(1, segmentNo(parseLsn('0/2000028'), 16 * MiB), 16 * MiB)).toBe('000000010000000000000002');
    expect(segmentName(1, segmentNo(parseLsn('16/B374D848'), 16 * MiB), 16 * MiB)).toBe('0000000100000016000000B3');
    expect(segmentName(3, segmentNo(parseLsn('16/B374D848'), 64 * MiB), 64 * MiB)).toBe('00000003000000160000002C');
    expect(segmentNoOf('0000000100000016000000B3', 16 * MiB)).toBe(0x16n * 256n + 0xb3n);
    expect(formatLsn(parseLsn('16/b374d848'))).toBe('16/B374D848');
    expect(() => segmentName(1, 1n, 3 * MiB)).toThrow(/power of two/);
  });

  it('parses every kind of file PostgreSQL archives, and nothing else', () => {
    expect(parseWalName('000000010000000000000002')).toEqual({ name: '000000010000000000000002', kind: 'segment', timeline: 1, position: '0000000000000002' });
    expect(parseWalName('0000000A.history')).toMatchObject({ kind: 'history', timeline: 10 });
    expect(parseWalName('000000020000000000000005.partial')).toMatchObject({ kind: 'partial', timeline: 2, position: '0000000000000005' });
    expect(parseWalName('000000010000000000000002.00000028.backup')).toMatchObject({ kind: 'backup', timeline: 1, position: '0000000000000002' });
    for (const bad of ['RECOVERYXLOG', '00000001000000000000002', '000000010000000000000002.tmp', '../000000010000000000000002', '0000000g0000000000000002']) expect(parseWalName(bad)).toBeUndefined();
  });

  it('reads backup_label and leaves out what pg_basebackup leaves out', () => {
    const label = 'START WAL LOCATION: 0/B000028 (file 00000001000000000000000B)\nCHECKPOINT LOCATION: 0/B000060\nBACKUP METHOD: streamed\nBACKUP FROM: primary\nSTART TIME: 2026-11-23 12:21:24 UTC\nLABEL: keep\nSTART TIMELINE: 1\n';
    expect(parseBackupLabel(label)).toEqual({ startLsn: '0/B000028', startWal: '00000001000000000000000B', timeline: 1 });
    const ex = pgdataExclude();
    expect(ex('postmaster.pid', 'file')).toBe(true);
    expect(ex('backup_label', 'file')).toBe(true);
    expect(ex('pg_wal/000000010000000000000001', 'file')).toBe(true);
    expect(ex('pg_wal/archive_status', 'dir')).toBe(false);
    expect(ex('pg_wal/archive_status/000000010000000000000001.done', 'file')).toBe(true);
    expect(ex('pg_wal', 'dir')).toBe(false);
    expect(ex('pg_stat_tmp/global.stat', 'file')).toBe(true);
    expect(ex('global/pg_internal.init', 'file')).toBe(true);
    expect(ex('base/5/pgsql_tmp', 'dir')).toBe(true);
    expect(ex('base/5/16384', 'file')).toBe(false);
    expect(ex('global/pg_control', 'file')).toBe(false);
    expect(ex('pg_tblspc/16406', 'symlink')).toBe(false);
  });

  it('finds the system identifier in a segment header', () => {
    const data = Buffer.alloc(16 * MiB);
    data.writeUInt16LE(0xd110, 0);
    data.writeUInt16LE(0x0002, 2);
    data.writeBigUInt64LE(7311338947012616740n, 24);
    data.writeUInt32LE(16 * MiB, 32);
    expect(walSystemId(data)).toBe('7311338947012616740');
    data.writeUInt16LE(0, 2);
    expect(walSystemId(data)).toBeUndefined();
  });
});

describe('WAL retention', () => {
  it('drops segments below the oldest kept base backup start, per timeline; keeps history files', () => {
    const b1 = baseBackup(1, 4, 4, 0, 10);
    const b2 = baseBackup(1, 9, 10, 100, 110);
    const files = [seg(1, 3), seg(1, 4), seg(1, 8), seg(1, 9), seg(1, 12), '00000002.history', seg(2, 11), seg(2, 12), `${seg(1, 11)}.partial`, `${seg(1, 9)}.00000028.backup`, `${seg(1, 4)}.00000028.backup`];
    const all = [b1, b2, ...files.map((f, i) => wal(f, at(i)))];
    const { bases, wal: w } = pgCatalog(all);
    expect(bases.map((b) => b.snapshot.id)).toEqual([b1.id, b2.id]);
    const names = (kept: Snapshot[]) => unneededWal(bases.filter((b) => kept.includes(b.snapshot)), w).remove.map((x) => x.name).sort();
    // Both kept: only what precedes the first backup.
    expect(names([b1, b2])).toEqual([seg(1, 3)]);
    // Only the second: everything before segment 9, on every timeline; the history file stays.
    expect(names([b2])).toEqual([seg(1, 3), seg(1, 4), `${seg(1, 4)}.00000028.backup`, seg(1, 8)].sort());
    expect(unneededWal(bases.filter((b) => b.snapshot === b2), w).cutoffs).toEqual([
      { timeline: 1, start_wal: seg(1, 9) },
      { timeline: 2, start_wal: seg(1, 9) },
    ]);
    // No base backup kept: nothing decided.
    expect(names([])).toEqual([]);
  });

  it('a base backup on a later timeline cuts older timelines at its start too (conservatively: later ones stay)', () => {
    const b = baseBackup(2, 20, 21, 0, 10);
    const all = [b, wal(seg(1, 19), at(1)), wal(seg(1, 25), at(2)), wal(seg(2, 19), at(3)), wal(seg(2, 20), at(4))];
    const { bases, wal: w } = pgCatalog(all);
    expect(unneededWal(bases, w).remove.map((x) => x.name).sort()).toEqual([seg(1, 19), seg(2, 19)]);
  });
});

describe('the recovery window', () => {
  it('runs from the oldest base backup end to the newest segment push, and names the gaps', () => {
    const b = baseBackup(1, 4, 5, 0, 10);
    const w = pitrWindow([b, wal(seg(1, 4), at(3)), wal(seg(1, 5), at(9)), wal(seg(1, 6), at(20)), wal(seg(1, 8), at(40)), wal('00000002.history', at(50))]);
    expect(w.from).toBe(iso(at(10)));
    expect(w.to).toBe(iso(at(40)));
    expect(w.newest_wal?.name).toBe(seg(1, 8));
    expect(w.gaps).toEqual([{ timeline: 1, missing: [seg(1, 7)], count: 1 }]);
    expect(w.timelines).toEqual([1, 2]);
    expect(pitrWindow([wal(seg(1, 1), at(1))]).from).toBeNull();
  });

  it('ends at the newest segment PostgreSQL last wrote, not when a backlogged archiver pushed it', async () => {
    // Segment 6 was finished at 20 s but pushed at 60 s (the archiver was behind): commits between 20 and 60 s
    // went into segment 7, which is not archived. A window or a plan that ends at the push would promise them.
    const b = baseBackup(1, 4, 5, 0, 10);
    const late = snap([...wal(seg(1, 6), at(60)).tags, `wal-end:${iso(at(20))}`], at(60));
    const archived = [b, wal(seg(1, 4), at(3)), wal(seg(1, 5), at(9)), late];
    const w = pitrWindow(archived);
    expect(w.to).toBe(iso(at(20)));
    expect(w.newest_wal).toMatchObject({ name: seg(1, 6), time: iso(at(60)), end: iso(at(20)) });
    await expect(planRestore(archived, { at: at(40), timeline: 'latest' }, noHistory)).rejects.toThrow(new RegExp(`WAL is archived up to ${iso(at(20)).replace(/\./g, '\\.')}`));
    expect((await planRestore(archived, { at: at(15), timeline: 'latest' }, noHistory)).wal).toMatchObject({ to: seg(1, 6), to_time: iso(at(20)) });
  });
});

describe('planning a restore', () => {
  const b1 = baseBackup(1, 4, 4, 0, 10);
  const b2 = baseBackup(1, 7, 8, 100, 110);
  const archive = [b1, b2, ...[4, 5, 6, 7, 8, 9, 10].map((i) => wal(seg(1, i), at(i * 20)))];

  it('picks the newest base backup that ended before the target, and the first segment pushed after it', async () => {
    const p = await planRestore(archive, { at: at(105), timeline: 'latest' }, noHistory);
    // b2 ends at 110, after 105: b1 is the one.
    expect(p.base.snapshot.id).toBe(b1.id);
    // Segment 5 was pushed at 100, segment 6 at 120: records up to 105 are in 6 at the latest.
    expect(p.wal).toMatchObject({ from: seg(1, 4), to: seg(1, 6), segments: 3, more_after: 4 });
    const q = await planRestore(archive, { at: at(115), timeline: 'latest' }, noHistory);
    expect(q.base.snapshot.id).toBe(b2.id);
    expect(q.wal).toMatchObject({ from: seg(1, 7), to: seg(1, 8), segments: 2 });
  });

  it('refuses targets it cannot reach: before every backup end, past the archive, across a gap', async () => {
    await expect(planRestore(archive, { at: at(5), timeline: 'latest' }, noHistory)).rejects.toThrow(/no base backup ended at or before/);
    await expect(planRestore(archive, { at: at(999), timeline: 'latest' }, noHistory)).rejects.toThrow(/WAL is archived up to .* only/);
    const gap = archive.filter((s) => !s.tags.includes(`wal:${seg(1, 5)}`));
    await expect(planRestore(gap, { at: at(105), timeline: 'latest' }, noHistory)).rejects.toThrow(new RegExp(`WAL ${seg(1, 5)} is not archived: recovery would stop there`));
    const noStop = [b1, wal(seg(1, 5), at(100))];
    await expect(planRestore(noStop, { at: at(150), timeline: 'latest' }, noHistory)).rejects.toThrow(/cannot be made consistent/);
    // Without a target: everything archived, no error.
    expect((await planRestore(archive, { timeline: 'latest' }, noHistory)).wal.to).toBe(seg(1, 10));
  });

  it('follows timeline history files: latest switches timelines where the history says, current stays', async () => {
    // Timeline 2 branched off at 0/6800000 (in segment 6); timeline 1 went on to 10.
    const withTl2 = [...archive, wal('00000002.history', at(130)), wal(seg(2, 6), at(135)), wal(seg(2, 7), at(300))];
    const history = async () => '1\t0/6800000\tbefore 2026-11-23 10:01:45+00\n';
    const latest = await planRestore(withTl2, { at: at(105), timeline: 'latest' }, history);
    expect(latest.target_timeline).toBe(2);
    expect(latest.path).toEqual([
      { timeline: 1, begins: seg(1, 0) },
      { timeline: 2, begins: seg(2, 6) },
    ]);
    expect(latest.wal).toMatchObject({ from: seg(1, 4), to: seg(2, 6), segments: 3 });
    const current = await planRestore(withTl2, { at: at(190), timeline: 'current' }, history);
    expect(current.target_timeline).toBe(1);
    expect(current.path).toEqual([{ timeline: 1, begins: seg(1, 0) }]);
    expect(current.base.snapshot.id).toBe(b2.id);
    expect(current.wal).toMatchObject({ from: seg(1, 7), to: seg(1, 10), segments: 4 });
    // A timeline whose history does not go through the backup's timeline is refused.
    await expect(planRestore(withTl2, { at: at(105), timeline: 2 }, async () => '3\t0/6800000\tx\n')).rejects.toThrow(/does not descend from timeline 1/);
  });
});
