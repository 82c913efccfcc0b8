import { create } from '@bufbuild/protobuf';
import { KeepError } from '@keep/core';
import { GetAuditHeadResponseSchema, ListTokensResponseSchema, ReportReplicaResponseSchema, WatchCommitsResponseSchema } from '@keep/proto';
import { tokenToWire } from '../../sync/tokens.js';
import { checkpointTable } from '../../audit/checkpoints.js';
import { RpcCalls } from '../call.js';
import { audit } from '../../audit/log.js';
import { toStatus } from '@keep/proto';

/** What replicas call on their primary: WatchCommits, ReportReplica, ListTokens, GetAuditHead. */
export function replicationHandlers(rpc: RpcCalls) {
  const { d } = rpc;

  return {
    watchCommits: rpc.subscription('WatchCommits', ['replica', 'admin'], (call, p) => {
      const on = (e: { snapshotId: string; source: string; time: string }) => {
        if (!d.tokens.isRevoked(p.tokenId)) return void call.write(create(WatchCommitsResponseSchema, e));
        stop();
        call.emit('error', toStatus(new KeepError('UNAUTHENTICATED', `token ${p.tokenId} was revoked`)));
      };
      // keepd's shutdown ends the stream: a watching replica must not hold the drain open.
      const end = () => call.end();
      d.replicas.commits.on('commit', on);
      d.replicas.commits.once('shutdown', end);
      const stop = () => (d.replicas.commits.off('commit', on), d.replicas.commits.off('shutdown', end));
      call.on('cancelled', stop);
      call.on('close', stop);
      call.on('error', stop);
    }),

    // Only replica tokens report: each stands for one registered replica (replicas.ts), an admin's for none.
    reportReplica: rpc.unary('ReportReplica', ['replica'], async (req: { replicaId: string; snapshotIds: string[]; newestTime: string }, p) => {
      // A replica acks only snapshots this primary holds.
      const known = new Set(d.repo.snapshots().map((s) => s.id));
      const held = req.snapshotIds.filter((id) => known.has(id));
      if (held.length < req.snapshotIds.length) d.log.warn({ replica: req.replicaId, principal: p.tokenId, unknown: req.snapshotIds.filter((id) => !known.has(id)).slice(0, 10) }, 'replica reported snapshots this primary does not have');
      if (req.snapshotIds.length > 0 && held.length === 0) throw new KeepError('NOT_FOUND', `no snapshot ${req.snapshotIds[0]} on this primary: a replica acks only snapshots the primary holds`);
      await d.replicas.report(req.replicaId, p.tokenId, held, req.newestTime, (id) => d.tokens.isRevoked(id));
      return create(ReportReplicaResponseSchema, {});
    }),

    listTokens: rpc.unary('ListTokens', ['replica', 'admin'], async (_req: unknown, p) => {
      const tokens = d.tokens.list();
      // An admin's listing is audited (`keep admin token list`); a replica's, on every pull, is not.
      if (p.role === 'admin') await audit(d.repo).record('admin.token.list', p, { tokens: tokens.length });
      return create(ListTokensResponseSchema, { tokens: tokens.map(tokenToWire) });
    }),

    // The head as checkpointed (durable records only), with this keepd's time: the replica keeps it (audit/replicated.ts).
    getAuditHead: rpc.unary('GetAuditHead', ['replica', 'admin'], () => {
      const head = checkpointTable(d.repo).get('head');
      return create(GetAuditHeadResponseSchema, { seq: BigInt(head?.seq ?? 0), hash: head?.hash ?? '', serverTime: new Date(d.repo.clock.now()).toISOString() });
    }),
  };
}
