import fs from 'node:fs';
import path from 'node:path';
import { Clock, KeepError, parseHistory, PgBase, pgCatalog, PgWal, SealPool, segmentName, segmentNo, segmentNoOf, Snapshot, TreeEntry } from '@keep/core';
import type { Unlocked } from '../repo/open.js';
import { pathText } from '../restore/named-error.js';
import { Restorer } from '../restore/restorer.js';
import { TreeReader } from '../tree/tree-reader.js';
import { confQuote } from './env.js';
import { pickCopy, writeWal } from './wal.js';

export type TimelineChoice = 'latest' | 'current' | number;

export interface RestorePlan {
  base: PgBase;
  /** ms, or undefined: replay all archived WAL */
  at?: number;
  timeline: TimelineChoice;
  /** the timeline recovery ends on */
  target_timeline: number;
  /** timelines walked, oldest first, with the segment each begins at */
  path: { timeline: number; begins: string }[];
  wal: {
    from: string;
    /** the last segment the restore needs: the first one pushed at or after the target (or the newest archived) */
    to: string;
    segments: number;
    /** push time of `to` */
    to_time: string;
    /** WAL files archived in the source beyond `to` (recovery reads on until it finds a commit after the target) */
    more_after: number;
  };
}

/** "2026-11-23 10:00:00.123+00": what recovery_target_time is given (UTC, never the server's zone). */
export function pgTimestamp(ms: number): string {
  return new Date(ms).toISOString().replace('T', ' ').replace('Z', '+00');
}

/**
 * Choose the base backup and check that the archive can take it to the
 * target. A base backup can reach any time after its stop (PostgreSQL is
 * consistent only once it has replayed to the stop location), so the newest
 * base backup that STOPPED at or before the target is chosen. Then the
 * segments from its start are walked along the timeline path: a segment
 * pushed at T holds only records written before T, so the first segment pushed
 * at or after the target is the last one certainly needed; a hole before it
 * (or an archive that ends before the target) is an error here rather than a
 * FATAL after the files were copied.
 */
export async function planRestore(
  snapshots: Snapshot[],
  o: { at?: number; base?: string; timeline: TimelineChoice; system?: string },
  readHistory: (w: PgWal) => Promise<string>,
): Promise<RestorePlan> {
  const { bases, wal } = pgCatalog(snapshots);
  if (bases.length === 0) throw new KeepError('NOT_FOUND', 'no PostgreSQL base backup in this source (keep pg backup makes one)');
  let base: PgBase | undefined;
  if (o.base) {
    const hits = bases.filter((b) => b.snapshot.id.startsWith(o.base!));
    if (hits.length !== 1) throw new KeepError(hits.length ? 'INVALID_ARGUMENT' : 'NOT_FOUND', hits.length ? `base backup prefix ${o.base} is ambiguous` : `no base backup ${o.base} in this source`);
    base = hits[0];
    if (o.at !== undefined && base.stopTime > o.at) throw new KeepError('INVALID_ARGUMENT', `base backup ${base.snapshot.id.slice(0, 8)} ended at ${new Date(base.stopTime).toISOString()}, after the target: PostgreSQL cannot stop before a backup's end`);
  } else {
    const fit = o.at === undefined ? bases : bases.filter((b) => b.stopTime <= o.at!);
    base = fit[fit.length - 1];
    if (!base) throw new KeepError('NOT_FOUND', `no base backup ended at or before ${new Date(o.at!).toISOString()} (the oldest ended at ${new Date(bases[0].stopTime).toISOString()})`);
  }
  const segSize = base.segSize;

  const byName = new Map<string, PgWal>();
  for (const w of wal) {
    const cur = byName.get(w.name);
    if (!cur || (o.system && w.system === o.system)) byName.set(w.name, w);
  }

  // The timeline path: PostgreSQL's recovery_target_timeline 'latest' follows
  // history files upward from the backup's timeline while they exist.
  let target = base.timeline;
  if (o.timeline === 'latest') while (byName.has(historyName(target + 1))) target++;
  else if (typeof o.timeline === 'number') target = o.timeline;
  const path: { timeline: number; beginsAt: bigint }[] = [{ timeline: target, beginsAt: 0n }];
  if (target !== base.timeline) {
    const h = byName.get(historyName(target));
    if (!h) throw new KeepError('NOT_FOUND', `timeline ${target} has no history file (${historyName(target)}) in this source`);
    const entries = parseHistory(await readHistory(h));
    if (!entries.some((e) => e.timeline === base!.timeline)) throw new KeepError('INVALID_ARGUMENT', `timeline ${target} does not descend from timeline ${base.timeline} of base backup ${base.snapshot.id.slice(0, 8)}`);
    path.length = 0;
    let begins = 0n;
    for (const e of entries) {
      if (e.timeline >= base.timeline) path.push({ timeline: e.timeline, beginsAt: segmentNo(begins, segSize) });
      begins = e.end;
    }
    path.push({ timeline: target, beginsAt: segmentNo(begins, segSize) });
    // A timeline that switched before the backup started is not walked.
  }
  const tliFor = (n: bigint) => {
    let t = path[0].timeline;
    for (const p of path) if (p.beginsAt <= n) t = p.timeline;
    return t;
  };

  const first = segmentNoOf(base.startWal, segSize);
  const stop = segmentNoOf(base.stopWal, segSize);
  let n = first;
  let last: PgWal | undefined;
  let reached = false;
  for (; ; n++) {
    const w = byName.get(segmentName(tliFor(n), n, segSize));
    if (!w) break;
    last = w;
    // Reached once a segment PostgreSQL went on writing after the target is archived (its last write, not its push time: a backlogged push comes late).
    if (n >= stop && o.at !== undefined && w.end >= o.at) {
      reached = true;
      break;
    }
  }
  const missing = segmentName(tliFor(n), n, segSize);
  if (!last || (!reached && n <= stop)) throw new KeepError('INCOMPLETE', `WAL ${missing} is not archived: base backup ${base.snapshot.id.slice(0, 8)} cannot be made consistent without it`);
  const beyond = [...byName.values()].filter((w) => w.kind === 'segment' && w.position! > missing.slice(8) && path.some((p) => p.timeline === w.timeline));
  if (o.at !== undefined && !reached) {
    if (beyond.length) {
      const hint = path.length > 1 ? `; timeline ${target} branched off at ${path[path.length - 1].timeline === target ? segmentName(target, path[path.length - 1].beginsAt, segSize) : '?'}, and --timeline current follows the backup's own timeline ${base.timeline} instead` : '';
      throw new KeepError('INCOMPLETE', `WAL ${missing} is not archived: recovery would stop there, at ${new Date(last.end).toISOString()}, before the target${hint}`);
    }
    throw new KeepError(
      'INCOMPLETE',
      `WAL is archived up to ${new Date(last.end).toISOString()} (${last.name}) only: PostgreSQL could not reach ${new Date(o.at).toISOString()}; restore to an earlier time, or wait for the next segment (SELECT pg_switch_wal() forces one)`,
    );
  }
  const after = [...byName.values()].filter((w) => w.kind === 'segment' && w.position! > last!.position! && path.some((p) => p.timeline === w.timeline)).length;
  return {
    base,
    at: o.at,
    timeline: o.timeline,
    target_timeline: target,
    path: path.map((p) => ({ timeline: p.timeline, begins: segmentName(p.timeline, p.beginsAt, segSize) })),
    wal: { from: base.startWal, to: last.name, segments: Number(n - first) + (reached ? 1 : 0), to_time: new Date(last.end).toISOString(), more_after: after },
  };
}

const historyName = (tli: number) => `${tli.toString(16).toUpperCase().padStart(8, '0')}.history`;

export interface RestoreFilesOptions {
  pgdata: string;
  /** oid -> directory; unmapped tablespaces go back to where they were */
  tablespaces: Map<string, string>;
  /** where unmapped tablespaces go (ROOT/OID) instead of where they were: a drill never writes outside its scratch */
  tablespaceRoot?: string;
  clock: Clock;
  onProgress?: (files: number, bytes: number, current?: string) => void;
}

/** Restore a base backup's files: the data directory, its tablespaces, backup_label and tablespace_map. */
export async function restoreFiles(repo: Unlocked, base: PgBase, o: RestoreFilesOptions): Promise<{ files: number; bytes: number; tablespaces: { oid: string; location: string }[]; owner: { uid: number; gid: number; mode: number } }> {
  const pgdata = path.resolve(o.pgdata);
  if (fs.existsSync(pgdata) && fs.readdirSync(pgdata).length) throw new KeepError('ALREADY_EXISTS', `${pgdata} is not empty; restore into a new or empty directory`);
  const trees = new TreeReader(repo);
  const root = await trees.read(Buffer.from(base.snapshot.root, 'hex'));
  const find = (name: string) => root.entries.find((e) => e.type === 'dir' && e.name.toString() === name);
  const dataEntry = find('pgdata');
  if (!dataEntry) throw new KeepError('CORRUPT', `snapshot ${base.snapshot.id} has no /pgdata`);
  const restore = async (id: Buffer, target: string) =>
    new Restorer(repo, { target, onProgress: (p) => o.onProgress?.(p.files, p.bytes, p.current && pathText(p.current)), onWarning: (w) => process.stderr.write(`keep: warning: ${w}\n`) }).run(id, o.clock.now(), () => o.clock.now());
  const stats = await restore(TreeReader.subtree(root, dataEntry), pgdata);
  let files = stats.files;
  let bytes = stats.bytes;
  setOwner(pgdata, dataEntry);

  // Tablespaces: the map names where each lived; restore there or where --tablespace says.
  const mapFile = path.join(pgdata, 'tablespace_map');
  const spacesEntry = find('tablespaces');
  const placed: { oid: string; location: string }[] = [];
  if (spacesEntry && fs.existsSync(mapFile)) {
    const spaces = await trees.read(TreeReader.subtree(root, spacesEntry));
    const lines = fs.readFileSync(mapFile, 'utf8').split('\n').filter(Boolean);
    const out: string[] = [];
    for (const line of lines) {
      const sp = line.indexOf(' ');
      const oid = line.slice(0, sp);
      const original = line.slice(sp + 1);
      const location = path.resolve(o.tablespaces.get(oid) ?? (o.tablespaceRoot ? path.join(o.tablespaceRoot, oid) : original));
      const e = spaces.entries.find((x) => x.name.toString() === oid);
      if (!e) throw new KeepError('CORRUPT', `tablespace ${oid} is in tablespace_map but not in the snapshot`);
      if (fs.existsSync(location) && fs.readdirSync(location).length) throw new KeepError('ALREADY_EXISTS', `tablespace ${oid}: ${location} is not empty (map it elsewhere with --tablespace ${oid}=DIR)`);
      const st = await restore(TreeReader.subtree(spaces, e), location);
      files += st.files;
      bytes += st.bytes;
      setOwner(location, e);
      out.push(`${oid} ${location}`);
      placed.push({ oid, location });
      const link = path.join(pgdata, 'pg_tblspc', oid);
      fs.rmSync(link, { force: true });
      fs.symlinkSync(location, link);
      chownLike(link, dataEntry, true);
    }
    fs.writeFileSync(mapFile, out.join('\n') + '\n');
  }
  return { files, bytes, tablespaces: placed, owner: { uid: dataEntry.uid, gid: dataEntry.gid, mode: dataEntry.mode } };
}

function setOwner(dir: string, e: TreeEntry): void {
  chownLike(dir, e);
  fs.chmodSync(dir, e.mode & 0o7777);
}

function chownLike(p: string, e: TreeEntry, link = false): void {
  if (process.getuid?.() !== 0) return;
  try {
    (link ? fs.lchownSync : fs.chownSync)(p, e.uid, e.gid);
  } catch {
    // keep ours
  }
}

const MANAGED = ['restore_command', 'recovery_end_command', 'recovery_target', 'recovery_target_lsn', 'recovery_target_name', 'recovery_target_time', 'recovery_target_xid', 'recovery_target_inclusive', 'recovery_target_timeline', 'recovery_target_action'];

/**
 * Recovery settings in postgresql.auto.conf (read after postgresql.conf, so
 * they win) and recovery.signal. Earlier recovery settings there (from a
 * previous restore of this cluster) are replaced, not stacked.
 */
export function writeRecoveryConfig(
  pgdata: string,
  o: { restoreCommand: string; at?: number; timeline: TimelineChoice; action: string; archiveMode?: 'off'; comment: string; owner: { uid: number; gid: number } },
): string[] {
  const conf = path.join(pgdata, 'postgresql.auto.conf');
  const keys = new Set([...MANAGED, ...(o.archiveMode ? ['archive_mode'] : [])]);
  const kept = fs.existsSync(conf)
    ? fs
        .readFileSync(conf, 'utf8')
        .split('\n')
        .filter((l) => {
          const m = /^\s*([a-z_]+)\s*=/.exec(l);
          return !(m && keys.has(m[1])) && !l.startsWith('# keep pg restore');
        })
    : ['# Do not edit this file manually!', '# It will be overwritten by the ALTER SYSTEM command.'];
  while (kept.length && kept[kept.length - 1] === '') kept.pop();
  const settings = [
    `restore_command = ${confQuote(o.restoreCommand)}`,
    // Segments wal-fetch fetched ahead and replay did not need (it stopped before them).
    `recovery_end_command = ${confQuote('rm -rf pg_wal/keep-prefetch')}`,
    ...(o.at !== undefined ? [`recovery_target_time = ${confQuote(pgTimestamp(o.at))}`, `recovery_target_action = ${confQuote(o.action)}`] : []),
    `recovery_target_timeline = ${confQuote(String(o.timeline))}`,
    ...(o.archiveMode ? [`archive_mode = ${confQuote(o.archiveMode)}`] : []),
  ];
  fs.writeFileSync(conf, [...kept, `# keep pg restore: ${o.comment}`, ...settings, ''].join('\n'));
  const signal = path.join(pgdata, 'recovery.signal');
  fs.writeFileSync(signal, '');
  fs.rmSync(path.join(pgdata, 'standby.signal'), { force: true });
  for (const f of [conf, signal]) {
    if (process.getuid?.() === 0) fs.chownSync(f, o.owner.uid, o.owner.gid);
    fs.chmodSync(f, 0o600);
  }
  return settings;
}

/** Read a (small) archived WAL file into memory: timeline history files. */
export async function readWalText(repo: Unlocked, pool: SealPool, w: PgWal, scratch: string): Promise<string> {
  const tmp = path.join(scratch, `.keep-${w.name}`);
  await writeWal(repo, pool, w, tmp);
  try {
    return fs.readFileSync(tmp, 'utf8');
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}

export { pickCopy };
