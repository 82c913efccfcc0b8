import { Clock, Compression, Id, SealPool, sealSnapshot, Snapshot, SnapshotStats } from '@keep/core';
import type { BackupSession } from '../repo/connection.js';
import type { Unlocked } from '../repo/open.js';
import { recordedMeta } from './recorded-meta.js';
import { Uploader } from './uploader.js';

/** The snapshot-level options every backup run takes (files, stdin, PostgreSQL base backup, WAL push). */
export interface RunOptions {
  source: string;
  host: string;
  tags: string[];
  tier?: string;
  compression: Compression;
  clock: Clock;
  /** the snapshot whose metadata tells unchanged files apart (default: the source's latest) */
  parent?: Snapshot;
}

/** What a run's walk stored: the snapshot's root, its counts, and when it started (the snapshot's time). */
export interface WalkResult {
  root: Id;
  stats: SnapshotStats;
  started: number;
  /** the snapshot's tags, when the walk decides them (default: the run's) */
  tags?: string[];
  /** the backed-up paths the snapshot records, sealed (recorded-meta.ts; default: none) */
  paths?: string[];
}

export interface RunHooks {
  /** work that goes on while the session opens (the session is not used before it is done) */
  meanwhile?: Promise<unknown>;
  /** after the last upload, before the snapshot is committed (a base backup waits for its WAL here) */
  beforeCommit?: () => Promise<void>;
  /** the writer session, when the caller has one opened ahead (the resident WAL archiver's spare: wal-spare-sessions.ts) */
  openSession?: () => Promise<BackupSession>;
}

/**
 * One backup run, the sequence files, stdin and PostgreSQL share: a writer
 * session opened, `walk` storing the data and trees through one uploader,
 * the uploads finished, the snapshot sealed with the repository's MAC key and
 * committed. When anything fails the session is aborted; what was stored
 * stays, so a rerun sends only what is still missing.
 */
export async function runBackup(repo: Unlocked, pool: SealPool, o: RunOptions, walk: (uploader: Uploader, session: BackupSession) => Promise<WalkResult>, hooks: RunHooks = {}): Promise<Snapshot> {
  const opening = hooks.openSession ? hooks.openSession() : repo.conn.beginBackup({ source: o.source, host: o.host, parent: o.parent?.id });
  const [session] = await Promise.all([opening, hooks.meanwhile]);
  try {
    const uploader = new Uploader(session, pool, o.compression);
    const w = await walk(uploader, session);
    await uploader.finish();
    await hooks.beforeCommit?.();
    const stats = w.stats;
    stats.bytes_sent = uploader.stats.bytes_sent;
    stats.chunks_new = uploader.stats.chunks_new;
    stats.duration_s = (o.clock.now() - w.started) / 1000;
    return await session.commit(
      sealSnapshot(repo.keys.snapshotMacKey, {
        source: o.source,
        host: o.host,
        time: new Date(w.started).toISOString(),
        parent: o.parent?.id,
        root: w.root.toString('hex'),
        tags: w.tags ?? o.tags,
        ...(o.tier ? { tier: o.tier } : {}),
        stats,
        ...recordedMeta(repo.keys, w.paths ?? []),
      }),
    );
  } catch (e) {
    await session.abort().catch(() => undefined);
    throw e;
  }
}
