import { create } from '@bufbuild/protobuf';
import { forgetSnapshots, KeepError, prune, Replacement } from '@keep/core';
import { forgetFromWire, ForgetRequest, ForgetResponseSchema, ReplaceSnapshotsResponseSchema, Snapshot, snapshotFromWire, snapshotToWire } from '@keep/proto';
import { RpcCalls } from '../call.js';
import { audit } from '../../audit/log.js';
import { forgetFields, pruneFields } from '../../audit/events.js';

/** A rewritten record as the agent sends it: its own id and MAC; server_time is the old record's (SnapshotStore.replace). */
function replacementOf(s: Snapshot | undefined): Replacement {
  if (!s) throw new KeepError('INVALID_ARGUMENT', 'a replacement needs a snapshot');
  const { server_time: _ignored, ...rest } = snapshotFromWire(s);
  return rest;
}

/**
 * Retention and record rewrites, admin tokens only (an agent may add
 * snapshots, never remove one): Forget (core's forget engine, as `keepd
 * forget`) and ReplaceSnapshots (`keep tag`).
 */
export function retentionHandlers(rpc: RpcCalls) {
  const { d } = rpc;

  return {
    forget: rpc.unary('Forget', ['admin'], async (req: ForgetRequest, p) => {
      if (!req.dryRun) rpc.writable();
      const result = await forgetSnapshots(d.repo, forgetFromWire(req), d.clock);
      const removed = result.groups.reduce((n, g) => n + g.removed.length + (g.wal?.removed.length ?? 0), 0);
      if (!req.dryRun && removed) d.log.info({ removed }, 'snapshots forgotten');
      // The engine `keepd prune` runs; open sessions' blobs are protected as they are from a prune beside keepd.
      // A dry run is audited too (an admin's remote call), marked as one.
      await audit(d.repo).record('forget', p, { ...forgetFields(result), ...(req.dryRun ? { dry_run: true } : {}) });
      if (req.prune && !req.dryRun) result.prune = await prune(d.repo);
      if (result.prune) await audit(d.repo).record('prune', p, pruneFields(result.prune));
      return create(ForgetResponseSchema, { reportJson: JSON.stringify(result) });
    }),

    replaceSnapshots: rpc.unary('ReplaceSnapshots', ['admin'], async (req: { replacements: { oldId: string; snapshot?: Snapshot }[] }, p) => {
      rpc.writable();
      const out: Snapshot[] = [];
      for (const r of req.replacements) {
        const snap = await d.repo.replaceSnapshot(r.oldId, replacementOf(r.snapshot));
        d.log.info({ snapshot: snap.id, replaces: r.oldId, source: snap.source, principal: p.tokenId }, 'snapshot rewritten');
        await audit(d.repo).record('snapshot.replace', p, { source: snap.source, snapshot: snap.id, replaces: r.oldId });
        d.replicas.announce({ snapshotId: snap.id, source: snap.source, time: snap.time });
        out.push(snapshotToWire(snap));
      }
      return create(ReplaceSnapshotsResponseSchema, { snapshots: out });
    }),
  };
}
