import { KeepError } from '../errors.js';
import { Snapshot } from './snapshot.js';

/**
 * PostgreSQL point-in-time recovery: how base backups and archived WAL live
 * in a repository, read back from plaintext snapshot records only, so the
 * server can apply WAL retention and show the recovery window without a key.
 *
 * One source (e.g. "db") holds two kinds of snapshot:
 *
 *   base backup  tags: pg-base  timeline:N  start-lsn:X/Y  stop-lsn:X/Y
 *                      start-wal:<segment>  stop-wal:<segment>  stop-time:<RFC 3339>
 *                      wal-segsize:<bytes>  system:<system identifier>  pg-version:<num>
 *                time: when pg_backup_start returned (the backup's checkpoint)
 *                tree: /pgdata/… (PGDATA as copied, with backup_label and
 *                      tablespace_map added), /tablespaces/<oid>/…
 *
 *   WAL file     tags: pg-wal  wal:<file name>  timeline:N  wal-id:<keyed hash>
 *                      [system:<system identifier>]  [wal-end:<RFC 3339>]
 *                time: when `keep pg wal-push` started, i.e. after PostgreSQL
 *                      finished the file, so a WAL file pushed at T holds only
 *                      records written before T
 *                wal-end: the file's mtime, PostgreSQL's last write into it
 *                      (its switch). Records after it are in later files, so
 *                      this, not the push time, is where the archive ends:
 *                      a backlogged archiver pushes a file long after
 *                      PostgreSQL moved on (records written meanwhile are
 *                      not archived yet).
 *                tree: one file named like the WAL file
 *
 * A WAL file is a 24-hex-digit segment (TTTTTTTTXXXXXXXXYYYYYYYY: timeline,
 * then the segment's position), a timeline history file (TTTTTTTT.history),
 * a partial segment left by a promotion (<segment>.partial) or a backup
 * history file (<segment>.XXXXXXXX.backup). The last 16 hex digits of a
 * segment name order segments by position whatever the segment size, so
 * positions are compared as strings.
 */

export const PG_BASE_TAG = 'pg-base';
export const PG_WAL_TAG = 'pg-wal';

/** The value of a `key:value` tag (the first one), or undefined. */
export function tagValue(s: Pick<Snapshot, 'tags'>, key: string): string | undefined {
  const prefix = `${key}:`;
  const t = s.tags.find((x) => x.startsWith(prefix));
  return t === undefined ? undefined : t.slice(prefix.length);
}

export type WalKind = 'segment' | 'history' | 'partial' | 'backup';

export interface WalName {
  name: string;
  kind: WalKind;
  timeline: number;
  /** 16 hex digits (log id, segment): orders segments by position; undefined for history files */
  position?: string;
}

const SEGMENT_RE = /^([0-9A-F]{8})([0-9A-F]{16})$/;
const PARTIAL_RE = /^([0-9A-F]{8})([0-9A-F]{16})\.partial$/;
const BACKUP_RE = /^([0-9A-F]{8})([0-9A-F]{16})\.[0-9A-F]{8}\.backup$/;
const HISTORY_RE = /^([0-9A-F]{8})\.history$/;

/** Parse an archived WAL file name; undefined if PostgreSQL would never archive such a name. */
export function parseWalName(name: string): WalName | undefined {
  let m = SEGMENT_RE.exec(name);
  if (m) return { name, kind: 'segment', timeline: parseInt(m[1], 16), position: m[2] };
  if ((m = PARTIAL_RE.exec(name))) return { name, kind: 'partial', timeline: parseInt(m[1], 16), position: m[2] };
  if ((m = BACKUP_RE.exec(name))) return { name, kind: 'backup', timeline: parseInt(m[1], 16), position: m[2] };
  if ((m = HISTORY_RE.exec(name))) return { name, kind: 'history', timeline: parseInt(m[1], 16) };
  return undefined;
}

// ---------------------------------------------------------------- LSNs and segment names

/** "16/B374D848" -> 0x16B374D848n */
export function parseLsn(text: string): bigint {
  const m = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(text.trim());
  if (!m) throw new KeepError('INVALID_ARGUMENT', `not a WAL location: ${text}`);
  return (BigInt(`0x${m[1]}`) << 32n) | BigInt(`0x${m[2]}`);
}

export function formatLsn(lsn: bigint): string {
  return `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffffffffn).toString(16).toUpperCase()}`;
}

const hex8 = (n: bigint | number) => n.toString(16).toUpperCase().padStart(8, '0');

function checkSegSize(segSize: number): bigint {
  if (!Number.isInteger(segSize) || segSize < 1 << 20 || segSize > 1 << 30 || (segSize & (segSize - 1)) !== 0) {
    throw new KeepError('INVALID_ARGUMENT', `WAL segment size must be a power of two from 1 MiB to 1 GiB, not ${segSize}`);
  }
  return BigInt(segSize);
}

/** The segment number holding `lsn` (XLByteToSeg). */
export function segmentNo(lsn: bigint, segSize: number): bigint {
  return lsn / checkSegSize(segSize);
}

/** XLogFileName: timeline, then the segment number split at 2^32 bytes. */
export function segmentName(timeline: number, segNo: bigint, segSize: number): string {
  const perId = 0x100000000n / checkSegSize(segSize);
  return hex8(timeline) + hex8(segNo / perId) + hex8(segNo % perId);
}

/** The segment number a 24-digit segment name stands for. */
export function segmentNoOf(name: string, segSize: number): bigint {
  const m = /^[0-9A-F]{8}([0-9A-F]{8})([0-9A-F]{8})/.exec(name);
  if (!m) throw new KeepError('INVALID_ARGUMENT', `not a WAL segment name: ${name}`);
  return BigInt(`0x${m[1]}`) * (0x100000000n / checkSegSize(segSize)) + BigInt(`0x${m[2]}`);
}

/** The 16-digit position part of a segment number (for comparing with WalName.position). */
export function positionOf(segNo: bigint, segSize: number): string {
  return segmentName(0, segNo, segSize).slice(8);
}

/** Parse a timeline history file: each line "parentTLI<TAB>switchpoint<TAB>reason". */
export function parseHistory(text: string): { timeline: number; end: bigint }[] {
  const out: { timeline: number; end: bigint }[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const [tli, lsn] = line.split(/\s+/);
    if (!/^\d+$/.test(tli) || !lsn) throw new KeepError('CORRUPT', `not a timeline history line: ${line}`);
    out.push({ timeline: Number(tli), end: parseLsn(lsn) });
  }
  return out;
}

// ---------------------------------------------------------------- snapshot records

export interface PgBase {
  snapshot: Snapshot;
  timeline: number;
  startLsn: string;
  stopLsn: string;
  startWal: string;
  stopWal: string;
  /** ms; the earliest time a restore from this backup can stop at */
  stopTime: number;
  /** ms; snapshot.time */
  startTime: number;
  segSize: number;
  system?: string;
}

export interface PgWal extends WalName {
  snapshot: Snapshot;
  /** ms: when the push started; the file holds only records from before it */
  time: number;
  /** ms: PostgreSQL's last write into the file (wal-end tag; pushes before it was recorded: the push time) */
  end: number;
  /** keyed hash of the content (same key as chunk ids) */
  contentId?: string;
  system?: string;
}

export function pgBase(s: Snapshot): PgBase | undefined {
  if (!s.tags.includes(PG_BASE_TAG)) return undefined;
  const startWal = tagValue(s, 'start-wal');
  const stopWal = tagValue(s, 'stop-wal');
  const startLsn = tagValue(s, 'start-lsn');
  const stopLsn = tagValue(s, 'stop-lsn');
  const stop = tagValue(s, 'stop-time');
  const tli = tagValue(s, 'timeline');
  if (!startWal || !stopWal || !startLsn || !stopLsn || !stop || !tli) return undefined;
  return {
    snapshot: s,
    timeline: Number(tli),
    startLsn,
    stopLsn,
    startWal,
    stopWal,
    stopTime: Date.parse(stop),
    startTime: Date.parse(s.time),
    segSize: Number(tagValue(s, 'wal-segsize') ?? 16 * 1024 * 1024),
    system: tagValue(s, 'system'),
  };
}

export function pgWal(s: Snapshot): PgWal | undefined {
  if (!s.tags.includes(PG_WAL_TAG)) return undefined;
  const name = tagValue(s, 'wal');
  const parsed = name ? parseWalName(name) : undefined;
  if (!parsed) return undefined;
  const time = Date.parse(s.time);
  const end = tagValue(s, 'wal-end');
  return { ...parsed, snapshot: s, time, end: end ? Math.min(Date.parse(end), time) : time, contentId: tagValue(s, 'wal-id'), system: tagValue(s, 'system') };
}

/** A source's base backups (by stop time) and WAL files (by time), from its snapshots. */
export function pgCatalog(snapshots: readonly Snapshot[]): { bases: PgBase[]; wal: PgWal[]; other: Snapshot[] } {
  const bases: PgBase[] = [];
  const wal: PgWal[] = [];
  const other: Snapshot[] = [];
  for (const s of snapshots) {
    const b = pgBase(s);
    if (b) {
      bases.push(b);
      continue;
    }
    const w = pgWal(s);
    if (w) wal.push(w);
    else other.push(s);
  }
  bases.sort((a, b) => a.stopTime - b.stopTime || (a.snapshot.id < b.snapshot.id ? -1 : 1));
  wal.sort((a, b) => a.time - b.time || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return { bases, wal, other };
}

export function isPgSource(snapshots: readonly Snapshot[]): boolean {
  return snapshots.some((s) => s.tags.includes(PG_BASE_TAG) || s.tags.includes(PG_WAL_TAG));
}

// ---------------------------------------------------------------- WAL retention

/**
 * Which WAL files no kept base backup needs. Recovery from a base backup on
 * timeline T reads segments from its start segment on, on T and on the
 * timelines that branch from T later. So for each timeline t the cut-off is
 * the smallest start position among kept base backups on timelines <= t (when
 * there is none, among all kept base backups: a conservative choice), and a
 * segment, partial segment or backup history file is unneeded when its
 * position is below its timeline's cut-off. Timeline history files are tiny
 * and needed to follow timelines: always kept. With no kept base backup at all
 * nothing is decided (the WAL may be waiting for a first or running backup).
 */
export function unneededWal(kept: readonly PgBase[], wal: readonly PgWal[]): { remove: PgWal[]; cutoffs: { timeline: number; start_wal: string }[] } {
  if (kept.length === 0) return { remove: [], cutoffs: [] };
  const startOf = (b: PgBase) => b.startWal.slice(8);
  const cutoffFor = (t: number): { pos: string; wal: string } => {
    const eligible = kept.filter((b) => b.timeline <= t);
    const from = eligible.length ? eligible : kept;
    let best = from[0];
    for (const b of from) if (startOf(b) < startOf(best)) best = b;
    return { pos: startOf(best), wal: best.startWal };
  };
  const timelines = [...new Set(wal.filter((w) => w.position !== undefined).map((w) => w.timeline))].sort((a, b) => a - b);
  const cut = new Map(timelines.map((t) => [t, cutoffFor(t)]));
  const remove = wal.filter((w) => w.position !== undefined && w.position < cut.get(w.timeline)!.pos);
  return { remove, cutoffs: timelines.map((t) => ({ timeline: t, start_wal: cut.get(t)!.wal })) };
}

// ---------------------------------------------------------------- the recovery window

export interface PitrWindow {
  /** earliest time a restore can target: the oldest base backup's stop time (PostgreSQL is consistent only from there) */
  from: string | null;
  /** latest time a restore can target: the newest archived segment's last write (every record before it is archived, if the WAL is complete) */
  to: string | null;
  oldest_base: { id: string; start_time: string; stop_time: string; start_wal: string } | null;
  newest_base: { id: string; stop_time: string } | null;
  newest_wal: { name: string; time: string; end: string } | null;
  base_backups: number;
  wal_files: number;
  timelines: number[];
  /** segments missing between the oldest base backup's start and the newest segment, per timeline (first few) */
  gaps: { timeline: number; missing: string[]; count: number }[];
}

/**
 * The window a restore can reach: from the oldest base backup's stop time to
 * the newest archived segment's last write, with the holes found in the segment sequence (a hole
 * ends recovery early: a restore past it stops at the hole).
 */
export function pitrWindow(snapshots: readonly Snapshot[]): PitrWindow {
  const { bases, wal } = pgCatalog(snapshots);
  const oldest = bases.reduce<PgBase | undefined>((o, b) => (!o || b.stopTime < o.stopTime ? b : o), undefined);
  const newest = bases[bases.length - 1];
  // History and backup-history files carry no records: the window ends at the newest segment.
  const withRecords = wal.filter((w) => w.kind === 'segment' || w.kind === 'partial');
  const lastWal = withRecords[withRecords.length - 1];
  const iso = (ms: number) => new Date(ms).toISOString();
  const gaps: PitrWindow['gaps'] = [];
  if (oldest) {
    const segSize = oldest.segSize;
    const byTl = new Map<number, Set<string>>();
    for (const w of wal) if (w.kind === 'segment') (byTl.get(w.timeline) ?? byTl.set(w.timeline, new Set()).get(w.timeline)!).add(w.position!);
    for (const [tl, have] of [...byTl].sort((a, b) => a[0] - b[0])) {
      const positions = [...have].sort();
      const low = tl === oldest.timeline ? oldest.startWal.slice(8) : positions[0];
      const lowNo = segmentNoOf(`00000000${low}`, segSize);
      const highNo = segmentNoOf(`00000000${positions[positions.length - 1]}`, segSize);
      const missing: string[] = [];
      let count = 0;
      for (let n = lowNo; n <= highNo && highNo - lowNo < 1_000_000n; n++) {
        if (have.has(positionOf(n, segSize))) continue;
        count++;
        if (missing.length < 5) missing.push(segmentName(tl, n, segSize));
      }
      if (count) gaps.push({ timeline: tl, missing, count });
    }
  }
  return {
    from: oldest ? iso(oldest.stopTime) : null,
    to: lastWal && oldest && lastWal.end >= oldest.stopTime ? iso(lastWal.end) : null,
    oldest_base: oldest ? { id: oldest.snapshot.id, start_time: oldest.snapshot.time, stop_time: iso(oldest.stopTime), start_wal: oldest.startWal } : null,
    newest_base: newest ? { id: newest.snapshot.id, stop_time: iso(newest.stopTime) } : null,
    newest_wal: lastWal ? { name: lastWal.name, time: lastWal.snapshot.time, end: iso(lastWal.end) } : null,
    base_backups: bases.length,
    wal_files: wal.length,
    timelines: [...new Set([...bases.map((b) => b.timeline), ...wal.map((w) => w.timeline)])].sort((a, b) => a - b),
    gaps,
  };
}
