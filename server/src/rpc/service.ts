import fs from 'node:fs';
import path from 'node:path';
import { create } from '@bufbuild/protobuf';
import { Metadata, sendUnaryData, ServerDuplexStream, ServerUnaryCall, ServerWritableStream, status as Status, UntypedServiceImplementation } from '@grpc/grpc-js';
import { Clock, ID_SIZE, Id, KeepError, MAX_BLOB_SIZE, NewSnapshot, Repository, storageFailure, toHex } from '@keep/core';
import {
  AddKeyResponseSchema,
  CheckResponseSchema,
  CloseSessionResponseSchema,
  CommitResponseSchema,
  GetConfigResponseSchema,
  isMalformed,
  ListSnapshotsResponseSchema,
  ListTokensResponseSchema,
  OfferResponseSchema,
  OpenSessionResponseSchema,
  PROTOCOL_VERSION,
  RemoveKeyResponseSchema,
  Snapshot,
  StatsResponseSchema,
  ReportReplicaResponseSchema,
  UploadResponseSchema,
  WatchCommitsResponseSchema,
} from '@keep/proto';
import { canUseSource, Principal, requireRole, TokenStore } from '../auth/tokens.js';
import { DedupScopeIndex } from '../dedup-scope.js';
import type { ReplicaRegistry } from '../replicas.js';
import type { Logger } from '../log.js';
import { serverMetrics } from '../metrics.js';
import { Session, SessionManager } from '../sessions.js';
import { encodeReadBlobsMany, encodeReadBlobsSingle, OutgoingBlob } from '@keep/proto';
import { readsOwnOnly, readView } from './read-view.js';
import { snapshotFromWire, snapshotToWire as toProtoSnapshot } from '@keep/proto';
import { tokenToWire } from '../sync/tokens.js';
import { admitKeyFile } from './key-rules.js';
import { toStatus } from '@keep/proto';
import type { StorageSpace } from '../storage-space.js';

/** Ids per Offer or ReadBlobs request; more is a malformed request, not a slow one. */
export const MAX_IDS_PER_REQUEST = 4096;
/**
 * ReadBlobs: requested blobs that lie back to back in one pack (a restore asks
 * in the order a backup wrote) are read with one call of up to this many
 * bytes; a gap up to READ_GAP between them is read and skipped.
 */
const READ_RUN = 2 * 1024 * 1024;
const READ_GAP = 64 * 1024;
/** Largest ReadBlobs message of several blobs a client may ask for (max_message_bytes). */
const MAX_READ_MESSAGE = 16 * 1024 * 1024;

/**
 * Write `msg` to a server stream; when the stream refuses more, wait until it
 * drains or the call is cancelled (a cancelled call never drains). Both
 * listeners go when either fires: a `once` of each left the other behind on
 * every wait, thousands in an upload of small files.
 */
function writeOrWait(call: ServerWritableStream<unknown, unknown> | ServerDuplexStream<unknown, unknown>, msg: unknown): Promise<void> {
  if (call.write(msg) || call.cancelled) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const go = () => {
      call.off('drain', go);
      call.off('cancelled', go);
      resolve();
    };
    call.on('drain', go);
    call.on('cancelled', go);
  });
}

export interface ServiceDeps {
  repo: Repository;
  replicas: ReplicaRegistry;
  /** synchronous mode: commits of these tiers wait for this many replicas */
  syncReplicas: { n: number; timeoutMs: number; tiers: string[] | 'all' };
  tokens: TokenStore;
  sessions: SessionManager;
  scope: DedupScopeIndex;
  clock: Clock;
  log: Logger;
  metrics: ReturnType<typeof serverMetrics>;
  /** why this keepd refuses writes (a replica not promoted: role.ts), or undefined */
  readOnly?: () => string | undefined;
  /** the data directory's free space: new sessions are refused below its reserve */
  space?: StorageSpace;
}

export function bearer(md: Metadata): string | undefined {
  const v = md.get('authorization')[0];
  return typeof v === 'string' && v.startsWith('Bearer ') ? v.slice(7).trim() : undefined;
}

function checkIds(ids: Uint8Array[]): Id[] {
  if (ids.length > MAX_IDS_PER_REQUEST) throw new KeepError('INVALID_ARGUMENT', `at most ${MAX_IDS_PER_REQUEST} ids per request, got ${ids.length}`);
  return ids.map((id) => {
    if (id.length !== ID_SIZE) throw new KeepError('INVALID_ARGUMENT', `ids are ${ID_SIZE} bytes, got ${id.length}`);
    return Buffer.from(id);
  });
}

/** A snapshot an agent commits: validated; the id is the agent's (covered by its mac) or, when empty, the server's; server_time is the server's to set. */
function fromProtoSnapshot(s: Snapshot | undefined): NewSnapshot {
  if (!s) throw new KeepError('INVALID_ARGUMENT', 'commit needs a snapshot');
  if (!/^[0-9a-f]{64}$/.test(s.root)) throw new KeepError('INVALID_ARGUMENT', 'snapshot root must be a 64-digit hex id');
  if (Number.isNaN(Date.parse(s.time))) throw new KeepError('INVALID_ARGUMENT', `snapshot time ${s.time} is not RFC 3339`);
  const { id, server_time: _ignored, ...rest } = snapshotFromWire(s);
  return { ...rest, ...(id ? { id } : {}), time: new Date(Date.parse(s.time)).toISOString() };
}

/** The RepositoryService handlers: authenticate, authorize, call the engine, map errors to statuses. */
export function repositoryService(d: ServiceDeps): UntypedServiceImplementation {
  const done = (method: string, p: Principal | undefined, started: number, code: Status, details?: string) => {
    d.metrics.rpc({ method, code: Status[code] });
    const entry = { method, principal: p?.tokenId, role: p?.role, code: Status[code], ms: Math.round(performance.now() - started) };
    if (code === Status.OK) d.log.debug(entry, 'rpc');
    else d.log.info({ ...entry, details }, 'rpc failed');
  };

  function unary<Req, Res>(method: string, fn: (req: Req, p: Principal) => Promise<Res> | Res) {
    return async (call: ServerUnaryCall<Req, Res>, cb: sendUnaryData<Res>) => {
      const started = performance.now();
      let p: Principal | undefined;
      try {
        p = d.tokens.authenticate(bearer(call.metadata));
        if (isMalformed(call.request)) throw new KeepError('INVALID_ARGUMENT', call.request.$malformed);
        const res = await fn(call.request, p);
        done(method, p, started, Status.OK);
        cb(null, res);
      } catch (e) {
        const s = toStatus(await storageFailure(e, d.repo.dir));
        done(method, p, started, s.code, s.details);
        cb(s);
      }
    };
  }

  const session = (id: string, p: Principal) => d.sessions.get(id, p);
  /** Every RPC that writes asks first: a replica takes writes from its own sync only, until promoted. */
  const writable = () => {
    const why = d.readOnly?.();
    if (why) throw new KeepError('PERMISSION_DENIED', why);
  };
  const warnedKeys = new Set<string>();
  const usableKeyFiles = () => {
    for (const k of d.repo.damagedKeyFiles()) if (!warnedKeys.has(k.problem)) warnedKeys.add(k.problem), d.log.warn({ key: k.id, problem: k.problem }, 'skipping a damaged key file (an admin removes it: keep key remove ID)');
    return d.repo.keyFiles();
  };

  return {
    getConfig: unary('GetConfig', (req: { protocolVersion: number }) => {
      if (req.protocolVersion > PROTOCOL_VERSION) {
        throw new KeepError('INVALID_ARGUMENT', `client speaks protocol ${req.protocolVersion}, this keepd speaks ${PROTOCOL_VERSION}: upgrade keepd`);
      }
      return create(GetConfigResponseSchema, {
        protocolVersion: PROTOCOL_VERSION,
        configJson: fs.readFileSync(path.join(d.repo.dir, 'config.json'), 'utf8'),
        // Only usable key files go out: a damaged one would stop older agents (warned about once here).
        keyFilesJson: usableKeyFiles().map((f) => JSON.stringify(f)),
        readOnly: Boolean(d.readOnly?.()),
      });
    }),

    addKey: unary('AddKey', (req: { keyFileJson: string }, p) => {
      requireRole(p, 'agent', 'admin');
      writable();
      d.repo.addKeyFile(admitKeyFile(d.repo, req.keyFileJson, p));
      return create(AddKeyResponseSchema, {});
    }),

    removeKey: unary('RemoveKey', (req: { keyId: string }, p) => {
      requireRole(p, 'admin');
      writable();
      d.repo.removeKeyFile(req.keyId);
      return create(RemoveKeyResponseSchema, {});
    }),

    openSession: unary('OpenSession', async (req: { source: string; host: string; parent: string }, p) => {
      requireRole(p, 'agent', 'admin');
      if (!canUseSource(p, req.source)) throw new KeepError('PERMISSION_DENIED', `this token may not back up source ${req.source}`);
      writable();
      d.space?.requireReserve();
      const s = await d.sessions.start(p, req.source, req.host, req.parent);
      d.log.info({ session: s.id, source: s.source, host: s.host, principal: p.tokenId }, 'session opened');
      return create(OpenSessionResponseSchema, { sessionId: s.id, leaseExpiresMs: BigInt(s.leaseUntil) });
    }),

    offer: unary('Offer', async (req: { sessionId: string; ids: Uint8Array[] }, p) => {
      const s = session(req.sessionId, p);
      const missing = await d.sessions.offer(s, checkIds(req.ids));
      return create(OfferResponseSchema, { missing });
    }),

    upload: (call: ServerDuplexStream<{ sessionId: string; id: Uint8Array; data: Uint8Array; storageHash: Uint8Array }, unknown>) => {
      const started = performance.now();
      let p: Principal | undefined;
      let failed = false;
      let chain: Promise<void> = Promise.resolve();
      /** sessions whose blobs this stream carried */
      const carried = new Set<Session>();
      const fail = (e: unknown) => {
        if (failed) return;
        failed = true;
        const s = toStatus(e);
        done('Upload', p, started, s.code, s.details);
        call.emit('error', s);
      };
      try {
        p = d.tokens.authenticate(bearer(call.metadata));
        requireRole(p, 'agent', 'admin');
      } catch (e) {
        fail(e);
        return;
      }
      call.on('data', (req) => {
        chain = chain.then(async () => {
          if (failed) return;
          try {
            if (isMalformed(req)) throw new KeepError('INVALID_ARGUMENT', req.$malformed);
            d.tokens.assertActive(p!); // a revoke ends the stream at its next message
            const s = session(req.sessionId, p!);
            carried.add(s);
            if (req.id.length !== ID_SIZE) throw new KeepError('INVALID_ARGUMENT', `blob id must be ${ID_SIZE} bytes`);
            if (req.data.length > MAX_BLOB_SIZE) throw new KeepError('INVALID_ARGUMENT', `blob over ${MAX_BLOB_SIZE} bytes`);
            if (req.storageHash.length !== ID_SIZE) throw new KeepError('INVALID_ARGUMENT', 'upload needs the blob storage hash');
            const data = Buffer.from(req.data.buffer, req.data.byteOffset, req.data.byteLength);
            const r = await d.sessions.upload(s, Buffer.from(req.id), data, Buffer.from(req.storageHash));
            if (r.stored) d.metrics.blobsStored(), d.metrics.bytesStored({}, r.newBytes);
            else d.metrics.blobsDeduped();
            // No existence oracle: a source-scoped agent is not told whether another source already stored the blob.
            const opaque = p!.role === 'agent' && p!.dedup === 'source';
            const ack = opaque ? { stored: true, newBytes: BigInt(data.length) } : { stored: r.stored, newBytes: BigInt(r.newBytes) };
            // (what arrived is stored whether or not the ack gets through)
            await writeOrWait(call, create(UploadResponseSchema, { id: req.id, ...ack }));
          } catch (e) {
            fail(await storageFailure(e, d.repo.dir));
          }
        });
      });
      call.on('end', () => {
        void chain.then(() => {
          if (failed) return;
          done('Upload', p, started, Status.OK);
          call.end();
        });
      });
      call.on('error', () => undefined);
      // The agent died or lost the connection: what it sent is kept and owned now, for its rerun.
      call.on('cancelled', () => {
        void chain.then(async () => {
          for (const s of carried) await d.sessions.settle(s).catch((e: unknown) => d.log.error({ err: e, session: s.id }, 'settling a broken upload stream failed'));
        });
      });
    },

    commit: unary('Commit', async (req: { sessionId: string; snapshot?: Snapshot }, p) => {
      const s = session(req.sessionId, p);
      writable(); // the write that publishes (a session opens only where writes are taken)
      const snap = await d.sessions.commit(s, fromProtoSnapshot(req.snapshot));
      d.metrics.commits({ source: snap.source });
      d.log.info({ snapshot: snap.id, source: snap.source, host: snap.host, principal: p.tokenId }, 'snapshot committed');
      d.replicas.announce({ snapshotId: snap.id, source: snap.source, time: snap.time });
      const sync = d.syncReplicas;
      if (sync.n > 0 && (sync.tiers === 'all' || sync.tiers.includes(snap.tier ?? ''))) {
        await d.replicas.waitFor(snap.id, sync.n, sync.timeoutMs);
        d.log.info({ snapshot: snap.id, replicas: sync.n }, 'snapshot replicated (synchronous)');
      }
      return create(CommitResponseSchema, { snapshot: toProtoSnapshot(snap) });
    }),

    closeSession: unary('CloseSession', async (req: { sessionId: string }, p) => {
      await d.sessions.close(session(req.sessionId, p));
      return create(CloseSessionResponseSchema, {});
    }),

    listSnapshots: unary('ListSnapshots', (req: { source: string }, p) => {
      if (req.source && !canUseSource(p, req.source)) throw new KeepError('PERMISSION_DENIED', `this token may not read source ${req.source}`);
      const list = d.repo.snapshots(req.source ? { source: req.source } : {}).filter((s) => canUseSource(p, s.source));
      return create(ListSnapshotsResponseSchema, { snapshots: list.map(toProtoSnapshot) });
    }),

    readBlobs: async (call: ServerWritableStream<{ ids: Uint8Array[]; maxMessageBytes: number; source: string }, unknown>) => {
      const started = performance.now();
      let p: Principal | undefined;
      /** blobs gathered for the next message (when the request allows several per message) */
      let gathered: OutgoingBlob[] = [];
      let gatheredBytes = 0;
      const write = (msg: unknown) => writeOrWait(call, msg);
      const flush = async () => {
        if (gathered.length === 0) return;
        const blobs = gathered;
        gathered = [];
        gatheredBytes = 0;
        await write(encodeReadBlobsMany(blobs));
      };
      try {
        p = d.tokens.authenticate(bearer(call.metadata));
        if (isMalformed(call.request)) throw new KeepError('INVALID_ARGUMENT', call.request.$malformed);
        const ids = checkIds(call.request.ids);
        const perMessage = Math.min(call.request.maxMessageBytes, MAX_READ_MESSAGE);
        const view = readView(d, p, call.request.source);
        // An id of another source's fails like an unknown one, before anything is sent (other tokens: NOT_FOUND when reached).
        if (readsOwnOnly(p)) for (const id of ids) if (!view(id)) throw new KeepError('PERMISSION_DENIED', `blob ${toHex(id)} does not belong to this token's sources`);
        const send = async (id: Buffer, data: Buffer, storageHash: Buffer) => {
          d.metrics.bytesServed({}, data.length);
          if (perMessage === 0) return write(encodeReadBlobsSingle({ id, data, storageHash }));
          if (gatheredBytes + data.length > perMessage) await flush();
          gathered.push({ id, data, storageHash });
          gatheredBytes += data.length + 2 * ID_SIZE;
        };
        let i = 0;
        while (i < ids.length && !call.cancelled) {
          d.tokens.assertActive(p); // a revoke ends the stream
          // The blobs from ids[i] on stored close together in one pack, read with one call.
          const run = await d.repo.readNearby(ids, i, { run: READ_RUN, gap: READ_GAP }, view);
          i += run.length;
          for (const b of run) {
            let read = b.data;
            // A damaged blob is read once more on its own: the engine's read retries a concurrent repack.
            if (read instanceof Error) {
              await flush(); // what was read before the damaged blob still goes out
              read = await d.repo.readStored(b.id, view);
            }
            await send(b.id, read.bytes, read.hash);
          }
        }
        await flush();
        done('ReadBlobs', p, started, call.cancelled ? Status.CANCELLED : Status.OK);
        call.end();
      } catch (e) {
        // Blobs gathered before a missing or damaged one are sent before the error.
        await flush().catch(() => undefined);
        const s = toStatus(await storageFailure(e, d.repo.dir));
        done('ReadBlobs', p, started, s.code, s.details);
        call.emit('error', s);
      }
    },

    watchCommits: (call: ServerWritableStream<unknown, unknown>) => {
      const started = performance.now();
      let p: Principal | undefined;
      try {
        p = d.tokens.authenticate(bearer(call.metadata));
        requireRole(p, 'replica', 'admin');
      } catch (e) {
        const st = toStatus(e);
        done('WatchCommits', p, started, st.code, st.details);
        call.emit('error', st);
        return;
      }
      const on = (e: { snapshotId: string; source: string; time: string }) => {
        if (!d.tokens.isRevoked(p!.tokenId)) return void call.write(create(WatchCommitsResponseSchema, e));
        stop();
        call.emit('error', toStatus(new KeepError('UNAUTHENTICATED', `token ${p!.tokenId} was revoked`)));
      };
      // keepd's shutdown ends the stream: a watching replica must not hold the drain open.
      const end = () => call.end();
      d.replicas.commits.on('commit', on);
      d.replicas.commits.once('shutdown', end);
      const stop = () => (d.replicas.commits.off('commit', on), d.replicas.commits.off('shutdown', end));
      call.on('cancelled', stop);
      call.on('close', stop);
      call.on('error', stop);
    },

    reportReplica: unary('ReportReplica', async (req: { replicaId: string; snapshotIds: string[]; newestTime: string }, p) => {
      // Only replica tokens report: each stands for one registered replica (replicas.ts), an admin's for none.
      requireRole(p, 'replica');
      // A replica acks only snapshots this primary holds.
      const known = new Set(d.repo.snapshots().map((s) => s.id));
      const held = req.snapshotIds.filter((id) => known.has(id));
      if (held.length < req.snapshotIds.length) d.log.warn({ replica: req.replicaId, principal: p.tokenId, unknown: req.snapshotIds.filter((id) => !known.has(id)).slice(0, 10) }, 'replica reported snapshots this primary does not have');
      if (req.snapshotIds.length > 0 && held.length === 0) throw new KeepError('NOT_FOUND', `no snapshot ${req.snapshotIds[0]} on this primary: a replica acks only snapshots the primary holds`);
      await d.replicas.report(req.replicaId, p.tokenId, held, req.newestTime, (id) => d.tokens.isRevoked(id));
      return create(ReportReplicaResponseSchema, {});
    }),

    listTokens: unary('ListTokens', (_req: unknown, p) => {
      requireRole(p, 'replica', 'admin');
      return create(ListTokensResponseSchema, { tokens: d.tokens.list().map(tokenToWire) });
    }),

    check: unary('Check', async (req: { readData: boolean; readDataSubset: number }, p) => {
      requireRole(p, 'admin');
      const report = await d.repo.check({ readData: req.readData, readDataSubset: req.readDataSubset || undefined });
      return create(CheckResponseSchema, { reportJson: JSON.stringify(report) });
    }),

    stats: unary('Stats', (_req: unknown, p) => {
      // Repository-wide counts would let a scoped agent see whether an upload was new (an existence oracle).
      if (p.role === 'agent' && p.dedup === 'source') throw new KeepError('PERMISSION_DENIED', 'repository-wide sizes need an admin or replica token');
      const snapshots = d.repo.snapshots().filter((s) => canUseSource(p, s.source)).length;
      return create(StatsResponseSchema, { snapshots: BigInt(snapshots), blobs: BigInt(d.repo.blobCount()), packs: BigInt(d.repo.packCount()), storedBytes: BigInt(d.repo.storedBytes()) });
    }),
  };
}
