import fs from 'node:fs';
import fsp, { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { atomicWrite, chunkId, Clock, Compression, fileChunks, KeepError, parseWalName, PgWal, pgCatalog, PG_WAL_TAG, SealPool, segmentName, segmentNoOf, Snapshot, toHex } from '@keep/core';
import { runBackup } from '../backup/run.js';
import { allowUnauthenticated, stderrWarn, usableSnapshots } from '../repo/authentic.js';
import type { Unlocked } from '../repo/open.js';
import type { BackupSession } from '../repo/connection.js';
import { TreeReader } from '../tree/tree-reader.js';
import { readWalChunks, storeWalFile, walChunkSize, walCompression } from './wal-store.js';

/**
 * WAL archiving through the repository. Each WAL file PostgreSQL archives is
 * one small snapshot of the database's source (see core's snapshot/pg.ts for
 * the tags), so it is deduplicated, compressed, encrypted, replicated and
 * retained like everything else, and the server knows each file's name,
 * timeline and push time without a key.
 */

export interface WalPushOptions {
  file: string;
  source: string;
  host: string;
  compression: Compression;
  tier?: string;
  clock: Clock;
  /** how earlier copies of the name are found (default: list the source's snapshots; the resident archiver keeps a catalog) */
  copies?: (repo: Unlocked, source: string, name: string) => Promise<PgWal[]>;
  /** the writer session, when one was opened ahead for this source (the resident archiver's spare) */
  openSession?: () => Promise<BackupSession>;
}

export interface WalPushResult {
  wal: string;
  timeline: number;
  /** the snapshot holding it (the earlier one when it was already archived) */
  snapshot: string;
  /** true when the same content was already archived under this name: nothing was sent */
  already: boolean;
  bytes: number;
  bytes_sent: number;
  time: string;
  duration_s: number;
  /** when each stage ended, in ms since the push began (stages overlap: the listing runs during the upload) */
  stages_ms: WalPushStages;
}

export interface WalPushStages {
  /** the file opened and its size checked (its chunks are read from here on, while the session opens) */
  opened: number;
  session: number;
  chunks: number;
  stored: number;
  listed: number;
  committed: number;
}

/** The system identifier in a segment's first (long) page header, if it has one (`data`: the segment, or its start). */
export function walSystemId(data: Buffer, size = data.length): string | undefined {
  // XLogLongPageHeaderData: magic u16, info u16 (XLP_LONG_HEADER = 2), tli u32, pageaddr u64, rem_len u32, pad, sysid u64 at 24, seg_size u32 at 32.
  if (data.length < 40 || (data.readUInt16LE(2) & 0x0002) === 0) return undefined;
  if (data.readUInt32LE(32) !== size) return undefined;
  return data.readBigUInt64LE(24).toString();
}

/** The archived copies of `name` in a source, oldest first. */
export function walCopies(snapshots: Snapshot[], name: string): PgWal[] {
  return pgCatalog(snapshots).wal.filter((w) => w.name === name);
}

/**
 * archive_command: store one WAL file. Idempotent (the same content under the
 * same name is a no-op that succeeds: PostgreSQL retries after a crash between
 * our commit and its bookkeeping), and loud on a conflict (different content
 * under a name already archived fails, as PostgreSQL's manual asks: it means
 * two clusters archive into one source, or a damaged file).
 */
export async function walPush(repo: Unlocked, pool: SealPool, o: WalPushOptions): Promise<WalPushResult> {
  const started = o.clock.now();
  const name = path.basename(o.file);
  const parsed = parseWalName(name);
  if (!parsed) throw new KeepError('INVALID_ARGUMENT', `${name} is not a WAL file name PostgreSQL archives (segment, .history, .partial or .backup)`);
  /** PostgreSQL's last write into the file: where the archive ends once it is stored (pg.ts, wal-end) */
  let lastWrite: Date;
  let size: number;
  let fh: FileHandle;
  try {
    fh = await fsp.open(o.file, 'r');
  } catch (e) {
    throw new KeepError('NOT_FOUND', `cannot read ${o.file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  // the reads start now and go on while the session opens (wal-store.ts); the handle closes once they are over
  let chunks: Promise<Buffer>[] = [];
  try {
    const st = await fh.stat();
    lastWrite = st.mtime;
    size = st.size;
    if (parsed.kind === 'segment' && (size < 1 << 20 || (size & (size - 1)) !== 0)) {
      throw new KeepError('INVALID_ARGUMENT', `${name} is ${size} bytes, not a whole WAL segment`);
    }
    chunks = readWalChunks(fh, size, walChunkSize(repo));
    return await storeWal(repo, pool, o, { name, parsed, size, lastWrite, chunks, started });
  } finally {
    await Promise.allSettled(chunks);
    await fh.close().catch(() => undefined);
  }
}

async function storeWal(
  repo: Unlocked,
  pool: SealPool,
  o: WalPushOptions,
  f: { name: string; parsed: NonNullable<ReturnType<typeof parseWalName>>; size: number; lastWrite: Date; chunks: Promise<Buffer>[]; started: number },
): Promise<WalPushResult> {
  const { name, parsed, size, lastWrite, started } = f;
  // The earlier copies are looked up while the segment is hashed and stored, and checked before the commit.
  const copies = (o.copies ?? listCopies)(repo, o.source, name);
  copies.catch(() => undefined); // awaited before commit; a failure before then must not go unhandled
  /** the cluster's system identifier, from the segment's first page (the first chunk) */
  let system: string | undefined;
  const compression = walCompression(o.compression);
  const run = {
    source: o.source,
    host: o.host,
    tags: [] as string[],
    tier: o.tier,
    compression,
    clock: o.clock,
  };
  const tags = (contentId: string) => [PG_WAL_TAG, `wal:${name}`, `timeline:${parsed.timeline}`, `wal-id:${contentId}`, `wal-end:${lastWrite.toISOString()}`, ...(system ? [`system:${system}`] : [])];
  let contentId = '';
  const stages: WalPushStages = { opened: o.clock.now() - started, session: 0, chunks: 0, stored: 0, listed: 0, committed: 0 };
  const mark = (stage: keyof WalPushStages) => (stages[stage] = o.clock.now() - started);
  try {
    const snap = await runBackup(
      repo,
      pool,
      run,
      async (uploader) => {
        mark('session');
        const first = (chunk: Buffer) => (system = parsed.kind === 'segment' ? walSystemId(chunk, size) : undefined);
        const w = await storeWalFile(repo, uploader, { name, size, chunks: f.chunks, compression, now: o.clock.now(), tags, first, onChunks: () => mark('chunks') });
        contentId = w.contentId;
        return w;
      },
      {
        openSession: o.openSession,
        beforeCommit: async () => {
          mark('stored');
          const found = await copies;
          mark('listed');
          checkCopies(found, name, o.source, contentId);
        },
      },
    );
    mark('committed');
    return { wal: name, timeline: parsed.timeline, snapshot: snap.id, already: false, bytes: size, bytes_sent: snap.stats.bytes_sent, time: snap.time, duration_s: (o.clock.now() - started) / 1000, stages_ms: stages };
  } catch (e) {
    if (!(e instanceof AlreadyArchived)) throw e;
    // the session was aborted: what it sent stays unreferenced (the same chunks as the copy's, so nothing new)
    return { wal: name, timeline: parsed.timeline, snapshot: e.copy.snapshot.id, already: true, bytes: size, bytes_sent: 0, time: e.copy.snapshot.time, duration_s: (o.clock.now() - started) / 1000, stages_ms: stages };
  }
}

/** The archived copies of `name` in `source`; only authenticated ones count: a forged record saying "archived" would let PostgreSQL drop the segment. */
export async function listCopies(repo: Unlocked, source: string, name: string): Promise<PgWal[]> {
  return walCopies(usableSnapshots(repo.keys, await repo.conn.snapshots({ source })), name);
}

/** The same content already archived under this name: the push is a no-op that succeeds. */
class AlreadyArchived extends Error {
  constructor(readonly copy: PgWal) {
    super(`${copy.name} is already archived`);
  }
}

function checkCopies(copies: PgWal[], name: string, source: string, contentId: string): void {
  const same = copies.find((c) => c.contentId === contentId);
  if (same) throw new AlreadyArchived(same);
  if (copies.length) {
    throw new KeepError('ALREADY_EXISTS', `${name} is already archived in source ${source} with different content; refusing to replace it (two clusters archiving into one source?)`);
  }
}

/** The newest archived copy of `name` (of cluster `system`, when given and recorded). */
export function pickCopy(copies: PgWal[], system?: string): PgWal | undefined {
  const fit = system ? copies.filter((c) => !c.system || c.system === system) : copies;
  return fit[fit.length - 1];
}

/**
 * Read one archived WAL file back and write it to `dest` (through a temporary
 * name and a rename, so PostgreSQL never sees half a file). Every chunk is
 * checked against its id, and the whole file against the content id recorded
 * when it was pushed.
 */
export async function writeWal(repo: Unlocked, pool: SealPool, wal: PgWal, dest: string, trees = new TreeReader(repo)): Promise<number> {
  const root = await trees.read(Buffer.from(wal.snapshot.root, 'hex'));
  const entry = root.entries.find((e) => e.type === 'file' && e.name.toString() === wal.name);
  if (!entry) throw new KeepError('CORRUPT', `snapshot ${wal.snapshot.id} does not hold ${wal.name}`);
  const ids = fileChunks(root, entry);
  const parts = await Promise.all(ids.map(async (id) => pool.open(id, await repo.conn.getBlob(id), true)));
  const data = Buffer.concat(parts);
  if (data.length !== entry.size) throw new KeepError('CORRUPT', `${wal.name}: restored ${data.length} bytes, the snapshot says ${entry.size}`);
  if (wal.contentId && toHex(chunkId(repo.keys, data)) !== wal.contentId) throw new KeepError('CORRUPT', `${wal.name}: content differs from what was pushed`);
  atomicWrite(dest, data, 0o600);
  return data.length;
}

/** What restore_command fetched: the copy of the file asked for, its size, and the segments prefetched after it. */
export interface WalFetchResult {
  copy: PgWal;
  bytes: number;
  ahead: string[];
}

/**
 * restore_command: the newest archived copy of `name` (of cluster `system`,
 * when given) written to `dest`, then up to `prefetch` segments after it into
 * `spool`; undefined when `name` is not archived.
 */
export async function fetchWal(
  repo: Unlocked,
  pool: SealPool,
  o: { source: string; name: string; dest: string; system?: string; prefetch: number; spool: string; env: NodeJS.ProcessEnv },
): Promise<WalFetchResult | undefined> {
  // Authenticated records only (KEEP_ALLOW_UNAUTHENTICATED=1 in restore_command's environment admits older ones).
  const snaps = usableSnapshots(repo.keys, await repo.conn.snapshots({ source: o.source }), { allowUnauthenticated: allowUnauthenticated(false, o.env), warn: stderrWarn });
  const copy = pickCopy(walCopies(snaps, o.name), o.system);
  if (!copy) return undefined;
  const bytes = await writeWal(repo, pool, copy, o.dest);
  // Best effort: the file asked for is in place whatever happens to the ones after it.
  const ahead = o.prefetch > 0 ? await prefetchAfter(repo, pool, snaps, copy, bytes, o.prefetch, o.spool, o.system).catch(() => [] as string[]) : [];
  return { copy, bytes, ahead };
}

// ---------------------------------------------------------------- prefetch (restore_command)

/**
 * Segments fetched ahead by one wal-fetch, for the calls that follow. Each
 * call is a process that unlocks the key (scrypt) and connects; PostgreSQL
 * asks for segments one at a time, so a long replay paid that per segment.
 * One slow call now fetches the next few segments too (in parallel, each
 * checked like the requested one) into pg_wal/keep-prefetch/, and the calls
 * for them just move the file into place. `keep pg restore` sets
 * recovery_end_command to remove the directory.
 */
export const DEFAULT_PREFETCH = 8;
const PREFETCH_CONCURRENCY = 4;

/** pg_wal/keep-prefetch, next to the path PostgreSQL asked for (pg_wal/RECOVERYXLOG). */
export function prefetchDir(dest: string): string {
  return path.join(path.dirname(path.resolve(dest)), 'keep-prefetch');
}

/** Move a prefetched segment into place; drop ones behind it (replay has passed them). */
export function takePrefetched(spool: string, name: string, dest: string): boolean {
  const parsed = parseWalName(name);
  if (parsed?.kind !== 'segment') return false;
  let entries: string[];
  try {
    entries = fs.readdirSync(spool);
  } catch {
    return false;
  }
  for (const e of entries) {
    const p = parseWalName(e);
    if (!p || (p.kind === 'segment' && p.position! < parsed.position!)) fs.rmSync(path.join(spool, e), { force: true });
  }
  if (!entries.includes(name)) return false;
  fs.renameSync(path.join(spool, name), dest);
  return true;
}

/** Fetch the segments after `from` on its timeline (while they are archived) into the spool; returns their names. */
export async function prefetchAfter(repo: Unlocked, pool: SealPool, snapshots: Snapshot[], from: PgWal, segSize: number, count: number, spool: string, system?: string): Promise<string[]> {
  if (from.kind !== 'segment' || segSize < 1 << 20 || (segSize & (segSize - 1)) !== 0) return [];
  const { wal } = pgCatalog(snapshots);
  const byName = new Map<string, PgWal[]>();
  for (const w of wal) (byName.get(w.name) ?? byName.set(w.name, []).get(w.name)!).push(w);
  const want: PgWal[] = [];
  const no = segmentNoOf(from.name, segSize);
  for (let i = 1n; i <= BigInt(count); i++) {
    const copy = pickCopy(byName.get(segmentName(from.timeline, no + i, segSize)) ?? [], system);
    if (!copy) break;
    if (!fs.existsSync(path.join(spool, copy.name))) want.push(copy);
  }
  if (!want.length) return [];
  fs.mkdirSync(spool, { recursive: true, mode: 0o700 });
  const trees = new TreeReader(repo);
  const done: string[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(PREFETCH_CONCURRENCY, want.length) }, async () => {
      while (next < want.length) {
        const w = want[next++];
        await writeWal(repo, pool, w, path.join(spool, w.name), trees);
        done.push(w.name);
      }
    }),
  );
  return done;
}
