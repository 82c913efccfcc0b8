import { sendUnaryData, ServerDuplexStream, ServerUnaryCall, ServerWritableStream, status as Status } from '@grpc/grpc-js';
import { Clock, KeepError, Repository, storageFailure } from '@keep/core';
import { isMalformed } from '@keep/proto';
import { Principal, requireRole, Role, TokenStore } from '../auth/tokens.js';
import { PeerWatch, peerAddress } from '../audit/peers.js';
import { revocationCheck } from '../auth/revocation.js';
import type { DedupScopeIndex } from '../dedup-scope.js';
import type { Logger } from '../log.js';
import type { serverMetrics } from '../metrics.js';
import type { ReplicaRegistry } from '../replicas.js';
import type { DrillStore } from '../drills.js';
import type { RunReportStore } from '../run-reports.js';
import type { SessionManager } from '../sessions.js';
import type { StorageSpace } from '../storage-space.js';
import { bearerToken, toStatus } from '@keep/proto';

/** What the RPC handlers work with (serve.ts builds it). */
export interface ServiceDeps {
  repo: Repository;
  replicas: ReplicaRegistry;
  /** agents' run reports (ReportRuns) */
  runs: RunReportStore;
  /** agents' restore drills (ReportDrills) */
  drills: DrillStore;
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

/**
 * Write `msg` to a server stream; when the stream refuses more, wait until it
 * drains or the call is cancelled (a cancelled call never drains). Both
 * listeners go when either fires: a `once` of each left the other behind on
 * every wait, thousands in an upload of small files.
 */
export function writeOrWait(call: ServerWritableStream<unknown, unknown> | ServerDuplexStream<unknown, unknown>, msg: unknown): Promise<void> {
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

/** A duplex stream's handlers, opened once its caller is authenticated. */
export interface DuplexHandlers<Req> {
  /** one request message (already checked: well-formed, token still active); a throw ends the stream with its status */
  message(req: Req): Promise<void>;
  /** the caller went away: runs after the messages taken so far */
  cancelled?(): Promise<void>;
}

/**
 * What every RPC gets around its handler, in one place: authentication (the
 * principal, its revocation check for the messages of a stream), the roles a
 * method needs, the malformed-message check, error mapping to a status, and
 * the metric and log line of each call (`done`).
 */
export function rpcCalls(d: ServiceDeps) {
  const peers = new PeerWatch(d.repo);
  /** The authenticated principal with its peer address; a token's first call from an address is audited. */
  const caller = (call: { metadata: ServerUnaryCall<unknown, unknown>['metadata']; getPeer(): string }): Principal => {
    const p = { ...d.tokens.authenticate(bearerToken(call.metadata)), peer: peerAddress(call.getPeer()) };
    // a viewer token reads the dashboard only: no RPC, not even the ones open to 'any' role
    if (p.role === 'viewer') throw new KeepError('PERMISSION_DENIED', 'a viewer token signs in to the dashboard only (keepd serve --http); it makes no calls');
    peers.note({ tokenId: p.tokenId, peer: p.peer });
    return p;
  };
  const done = (method: string, p: Principal | undefined, started: number, code: Status, details?: string) => {
    d.metrics.rpc({ method, code: Status[code] });
    const entry = { method, principal: p?.tokenId, role: p?.role, code: Status[code], ms: Math.round(performance.now() - started) };
    if (code === Status.OK) d.log.debug(entry, 'rpc');
    else d.log.info({ ...entry, details }, 'rpc failed');
  };

  /**
   * A stream's start: the principal with one of `roles`, or undefined when the
   * call was refused (ended with its status here).
   */
  const start = (method: string, call: ServerWritableStream<unknown, unknown> | ServerDuplexStream<unknown, unknown>, started: number, roles: Role[]): Principal | undefined => {
    let p: Principal | undefined;
    try {
      p = caller(call);
      requireRole(p, ...roles);
      return p;
    } catch (e) {
      const s = toStatus(e);
      done(method, p, started, s.code, s.details);
      call.emit('error', s);
      return undefined;
    }
  };

  return {
    d,
    done,

    /** Every RPC that writes asks first: a replica takes writes from its own sync only, until promoted. */
    writable(): void {
      const why = d.readOnly?.();
      if (why) throw new KeepError('PERMISSION_DENIED', why);
    },

    /** A unary call: authenticated, well-formed, by a token of one of `roles`. */
    unary<Req, Res>(method: string, roles: Role[] | 'any', fn: (req: Req, p: Principal) => Promise<Res> | Res) {
      return async (call: ServerUnaryCall<Req, Res>, cb: sendUnaryData<Res>) => {
        const started = performance.now();
        let p: Principal | undefined;
        try {
          p = caller(call);
          if (isMalformed(call.request)) throw new KeepError('INVALID_ARGUMENT', call.request.$malformed);
          if (roles !== 'any') requireRole(p, ...roles);
          const res = await fn(call.request, p);
          done(method, p, started, Status.OK);
          cb(null, res);
        } catch (e) {
          const s = toStatus(await storageFailure(e, d.repo.dir));
          done(method, p, started, s.code, s.details);
          cb(s);
        }
      };
    },

    /**
     * A server stream answering one request: authenticated, well-formed; `fn`
     * writes the responses. A throw ends the stream with its status, after
     * `beforeError` (what `fn` registered: responses it still holds go out first).
     */
    serverStream<Req>(method: string, fn: (call: ServerWritableStream<Req, unknown>, p: Principal, beforeError: (f: () => Promise<void>) => void) => Promise<void>) {
      return async (call: ServerWritableStream<Req, unknown>) => {
        const started = performance.now();
        let p: Principal | undefined;
        let before: (() => Promise<void>) | undefined;
        try {
          p = caller(call);
          if (isMalformed(call.request)) throw new KeepError('INVALID_ARGUMENT', call.request.$malformed);
          await fn(call, p, (f) => (before = f));
          done(method, p, started, call.cancelled ? Status.CANCELLED : Status.OK);
          call.end();
        } catch (e) {
          await (before?.() ?? Promise.resolve()).catch(() => undefined);
          const s = toStatus(await storageFailure(e, d.repo.dir));
          done(method, p, started, s.code, s.details);
          call.emit('error', s);
        }
      };
    },

    /**
     * A server stream that lives until the caller or keepd ends it (no request
     * to answer): authenticated with one of `roles`, then `fn` subscribes.
     */
    subscription(method: string, roles: Role[], fn: (call: ServerWritableStream<unknown, unknown>, p: Principal) => void) {
      return (call: ServerWritableStream<unknown, unknown>) => {
        const p = start(method, call, performance.now(), roles);
        if (p) fn(call, p);
      };
    },

    /**
     * A client or duplex stream: authenticated with one of `roles`; each
     * message checked (well-formed, the token not revoked: auth/revocation.ts) and handled
     * in order; the first failure ends the stream with its status, the
     * caller's end ends it OK once every message is handled.
     */
    duplex<Req>(method: string, roles: Role[], open: (call: ServerDuplexStream<Req, unknown>, p: Principal) => DuplexHandlers<Req>) {
      return (call: ServerDuplexStream<Req, unknown>) => {
        const started = performance.now();
        let failed = false;
        let chain: Promise<void> = Promise.resolve();
        const p = start(method, call as ServerDuplexStream<unknown, unknown>, started, roles);
        if (!p) return;
        const fail = (e: unknown) => {
          if (failed) return;
          failed = true;
          const s = toStatus(e);
          done(method, p, started, s.code, s.details);
          call.emit('error', s);
        };
        const h = open(call, p);
        const active = revocationCheck(d.tokens, p, d.clock);
        call.on('data', (req: Req) => {
          chain = chain.then(async () => {
            if (failed) return;
            try {
              if (isMalformed(req)) throw new KeepError('INVALID_ARGUMENT', req.$malformed);
              active(); // a revoke ends the stream at its first message REVOCATION_RECHECK_MS after it
              await h.message(req);
            } catch (e) {
              fail(await storageFailure(e, d.repo.dir));
            }
          });
        });
        call.on('end', () => {
          void chain.then(() => {
            if (failed) return;
            done(method, p, started, Status.OK);
            call.end();
          });
        });
        call.on('error', () => undefined);
        if (h.cancelled) {
          const cancelled = h.cancelled;
          call.on('cancelled', () => void chain.then(cancelled));
        }
      };
    },
  };
}

/** The calls every handler family is built with. */
export type RpcCalls = ReturnType<typeof rpcCalls>;
