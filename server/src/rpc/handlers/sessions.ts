import { create } from '@bufbuild/protobuf';
import { KeepError, NewSnapshot } from '@keep/core';
import { CloseSessionResponseSchema, CommitResponseSchema, encodeUploadAck, encodeUploadBatchAck, UploadRequestFields, OfferResponseSchema, OpenSessionResponseSchema, Snapshot } from '@keep/proto';
import { canUseSource, Principal } from '../../auth/tokens.js';
import { Session } from '../../sessions.js';
import { RpcCalls, writeOrWait } from '../call.js';
import { checkIds } from '../ids.js';
import { uploadedBlobs } from '../upload-blobs.js';
import { audit } from '../../audit/log.js';
import { snapshotFromWire, snapshotToWire as toProtoSnapshot } from '@keep/proto';

/** A snapshot an agent commits: validated; the id is the agent's (covered by its mac) or, when empty, the server's; server_time is the server's to set. */
function fromProtoSnapshot(s: Snapshot | undefined): NewSnapshot {
  if (!s) throw new KeepError('INVALID_ARGUMENT', 'commit needs a snapshot');
  if (!/^[0-9a-f]{64}$/.test(s.root)) throw new KeepError('INVALID_ARGUMENT', 'snapshot root must be a 64-digit hex id');
  if (Number.isNaN(Date.parse(s.time))) throw new KeepError('INVALID_ARGUMENT', `snapshot time ${s.time} is not RFC 3339`);
  const { id, server_time: _ignored, ...rest } = snapshotFromWire(s);
  return { ...rest, ...(id ? { id } : {}), time: new Date(Date.parse(s.time)).toISOString() };
}

/** Writer sessions and upload: OpenSession, Offer, Upload, Commit, CloseSession. */
export function sessionHandlers(rpc: RpcCalls) {
  const { d } = rpc;
  const session = (id: string, p: Principal) => d.sessions.get(id, p);

  return {
    openSession: rpc.unary('OpenSession', ['agent', 'admin'], async (req: { source: string; host: string; parent: string }, p) => {
      if (!canUseSource(p, req.source)) throw new KeepError('PERMISSION_DENIED', `this token may not back up source ${req.source}`);
      rpc.writable();
      d.space?.requireReserve();
      const s = await d.sessions.start(p, req.source, req.host, req.parent);
      d.log.info({ session: s.id, source: s.source, host: s.host, principal: p.tokenId }, 'session opened');
      // its session.open audit record is written with the session's end (SessionManager.auditOpen says why)
      return create(OpenSessionResponseSchema, { sessionId: s.id, leaseExpiresMs: BigInt(s.lease.leaseUntil) });
    }),

    // Offer, Commit and CloseSession: any token, on a session of its own (sessions.get).
    offer: rpc.unary('Offer', 'any', async (req: { sessionId: string; ids: Uint8Array[] }, p) => {
      const s = session(req.sessionId, p);
      const missing = await d.sessions.offer(s, checkIds(req.ids));
      return create(OfferResponseSchema, { missing });
    }),

    upload: rpc.duplex('Upload', ['agent', 'admin'], (call, p) => {
      /** sessions whose blobs this stream carried */
      const carried = new Set<Session>();
      return {
        async message(req: UploadRequestFields) {
          const s = session(req.sessionId, p);
          carried.add(s);
          const { blobs, batched } = uploadedBlobs(req);
          const added = await d.sessions.upload(s, blobs);
          // No existence oracle: a source-scoped agent is not told whether another source already stored the blob.
          const opaque = p.role === 'agent' && p.dedup === 'source';
          let stored = 0;
          let bytes = 0;
          const acks = blobs.map((b, i) => {
            if (added[i]) stored++, (bytes += b.stored.length);
            const told = opaque || added[i];
            return { id: b.id, stored: told, newBytes: told ? b.stored.length : 0 };
          });
          if (stored) d.metrics.blobsStored({}, stored), d.metrics.bytesStored({}, bytes);
          if (stored < blobs.length) d.metrics.blobsDeduped({}, blobs.length - stored);
          d.metrics.uploadMessages();
          // (what arrived is stored whether or not the ack gets through; encoded by hand: one per message)
          await writeOrWait(call, batched ? encodeUploadBatchAck(acks) : encodeUploadAck(acks[0]));
        },
        // The agent died or lost the connection: what it sent is kept and owned now, for its rerun.
        async cancelled() {
          for (const s of carried) await d.sessions.settle(s).catch((e: unknown) => d.log.error({ err: e, session: s.id }, 'settling a broken upload stream failed'));
        },
      };
    }),

    commit: rpc.unary('Commit', 'any', async (req: { sessionId: string; snapshot?: Snapshot }, p) => {
      const s = session(req.sessionId, p);
      rpc.writable(); // the write that publishes (a session opens only where writes are taken)
      const snap = await d.sessions.commit(s, fromProtoSnapshot(req.snapshot));
      d.metrics.commits({ source: snap.source });
      await audit(d.repo).record('session.commit', p, { source: snap.source, session: s.id, snapshot: snap.id, bytes: snap.stats.bytes, bytes_sent: snap.stats.bytes_sent, files: snap.stats.files });
      d.log.info({ snapshot: snap.id, source: snap.source, host: snap.host, principal: p.tokenId }, 'snapshot committed');
      d.replicas.announce({ snapshotId: snap.id, source: snap.source, time: snap.time });
      const sync = d.syncReplicas;
      if (sync.n > 0 && (sync.tiers === 'all' || sync.tiers.includes(snap.tier ?? ''))) {
        await d.replicas.waitFor(snap.id, sync.n, sync.timeoutMs);
        d.log.info({ snapshot: snap.id, replicas: sync.n }, 'snapshot replicated (synchronous)');
      }
      return create(CommitResponseSchema, { snapshot: toProtoSnapshot(snap) });
    }),

    closeSession: rpc.unary('CloseSession', 'any', async (req: { sessionId: string }, p) => {
      await d.sessions.close(session(req.sessionId, p));
      return create(CloseSessionResponseSchema, {});
    }),
  };
}
