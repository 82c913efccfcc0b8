import { EventEmitter } from 'node:events';
import { Clock, Database, KeepError, Repository, STATE_TABLES } from '@keep/core';
import { ReplicaHistory } from './replica-history.js';

/** What a primary knows of each replica (LMDB `replicas`), from the replica's own reports. */
export interface ReplicaRecord {
  replica_id: string;
  last_report: number;
  newest_time?: string;
  /** the most recent snapshot ids it reported holding */
  recent: string[];
  /** the replica token it reports with: bound at its first report (records from before: at their next) */
  token_id?: string;
}

const RECENT_KEPT = 1000;

/** The registry of each open repository, so a sync into it can announce what it imported. */
const registries = new WeakMap<Repository, ReplicaRegistry>();

/**
 * A replica announces the snapshots it imported to its own watchers, as a
 * primary announces its commits: replicas chained behind it pull at once.
 */
export function announceImported(repo: Repository, s: { id: string; source: string; time: string }): void {
  registries.get(repo)?.announce({ snapshotId: s.id, source: s.source, time: s.time });
}

/**
 * The primary's side of replication: commit events for replicas watching,
 * their reports, and waiting for N of them to hold a snapshot (synchronous
 * mode for the critical tier).
 */
export class ReplicaRegistry {
  readonly commits = new EventEmitter();
  private readonly db: Database<ReplicaRecord, string>;
  private readonly reported = new EventEmitter();
  /** what each replica held over time (its lag chart) */
  readonly history: ReplicaHistory;

  constructor(
    repo: Repository,
    private readonly clock: Clock,
  ) {
    this.db = repo.database<ReplicaRecord>(STATE_TABLES.replicas);
    this.history = new ReplicaHistory(repo, clock);
    registries.set(repo, this);
    this.commits.setMaxListeners(0);
    this.reported.setMaxListeners(0);
  }

  announce(e: { snapshotId: string; source: string; time: string }): void {
    this.commits.emit('commit', e);
  }

  /**
   * A replica's report, from `tokenId` (a replica token). Registration: a
   * replica id is bound to the token of its first report, and a token to one
   * replica id, so each replica counted in synchronous mode is one replica
   * token an admin created; a made-up id, or another token's replica, is
   * refused. A replica id whose token was revoked may be claimed by a new one.
   */
  async report(replicaId: string, tokenId: string, snapshotIds: string[], newestTime: string, revoked: (tokenId: string) => boolean): Promise<void> {
    if (!/^[0-9a-f]{16,64}$/.test(replicaId)) throw new KeepError('INVALID_ARGUMENT', 'bad replica id');
    const mine = this.list().find((r) => r.token_id === tokenId);
    if (mine && mine.replica_id !== replicaId) throw new KeepError('PERMISSION_DENIED', `token ${tokenId} reports for replica ${mine.replica_id}, not ${replicaId}: one replica token per replica (create another token for another replica)`);
    const prev = this.db.get(replicaId);
    if (prev?.token_id && prev.token_id !== tokenId && !revoked(prev.token_id)) throw new KeepError('PERMISSION_DENIED', `replica ${replicaId} reports with another token`);
    const recent = [...new Set([...snapshotIds, ...(prev?.recent ?? [])])].slice(0, RECENT_KEPT);
    await this.db.put(replicaId, { replica_id: replicaId, last_report: this.clock.now(), newest_time: newestTime || prev?.newest_time, recent, token_id: tokenId });
    await this.history.record(replicaId, newestTime || prev?.newest_time);
    for (const id of snapshotIds) this.reported.emit(id, replicaId);
  }

  list(): ReplicaRecord[] {
    return [...this.db.getRange()].map(({ value }) => value);
  }

  holders(snapshotId: string): Set<string> {
    return new Set(this.list().filter((r) => r.recent.includes(snapshotId)).map((r) => r.replica_id));
  }

  /** Resolve once `n` distinct replicas hold `snapshotId`; reject after `timeoutMs` with a clear error. */
  waitFor(snapshotId: string, n: number, timeoutMs: number): Promise<void> {
    const have = this.holders(snapshotId);
    if (have.size >= n) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const on = (replicaId: string) => {
        have.add(replicaId);
        if (have.size >= n) done(), resolve();
      };
      const timer = setTimeout(() => {
        done();
        reject(new KeepError('INCOMPLETE', `snapshot ${snapshotId} is committed on the primary, but ${have.size} of ${n} replica(s) hold it after ${timeoutMs / 1000} s (synchronous mode)`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.reported.off(snapshotId, on);
      };
      this.reported.on(snapshotId, on);
    });
  }
}
