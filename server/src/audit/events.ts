import { ForgetResult, prune, PruneReport, Repository } from '@keep/core';
import type { SyncReport } from '../sync/pull.js';
import { audit, LOCAL } from './log.js';
import type { AuditFields } from './record.js';

/**
 * The fields of the maintenance events, counts only, the same whether keepd
 * ran them for an admin token (RPC) or its own shell: what changed, never
 * which files or why an agent failed.
 */
export function forgetFields(r: ForgetResult): AuditFields & { source?: string } {
  const sources = [...new Set(r.groups.map((g) => g.source).filter((s): s is string => s !== undefined))];
  return {
    ...(sources.length === 1 ? { source: sources[0] } : {}),
    sources,
    groups: r.groups.length,
    snapshots_removed: r.groups.reduce((n, g) => n + g.removed.length, 0),
    snapshots_kept: r.groups.reduce((n, g) => n + g.snapshots.filter((s) => s.keep).length, 0),
    wal_removed: r.groups.reduce((n, g) => n + (g.wal?.removed.length ?? 0), 0),
  };
}

export function pruneFields(r: PruneReport): AuditFields {
  return { blobs_removed: r.blobs_removed, bytes_removed: r.bytes_removed, packs_deleted: r.packs_deleted, packs_repacked: r.packs_repacked, blobs_kept_recent: r.blobs_kept_recent };
}

/** A pull from an upstream: the upstream's address is the peer; failures as a count (their texts come from another server). */
export function syncFields(r: SyncReport): AuditFields {
  return { upstream: r.upstream, snapshots_synced: r.snapshots_synced.length, snapshots_failed: r.snapshots_failed.length, blobs_fetched: r.blobs_fetched, bytes_fetched: r.bytes_fetched, lag_s: r.lag_s };
}

/** `keepd prune` (and forget --prune) on keepd's shell, audited unless a dry run. */
export async function auditedPrune(repo: Repository, opts?: Parameters<typeof prune>[1]): Promise<PruneReport> {
  const r = await prune(repo, opts);
  if (!r.dry_run) await audit(repo).record('prune', LOCAL, pruneFields(r));
  return r;
}
