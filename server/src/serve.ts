import fs from 'node:fs';
import type http from 'node:http';
import { Server, ServerCredentials, status as Status } from '@grpc/grpc-js';
import { Clock, KeepError, Repository, SESSION_SWEEP_INTERVAL_MS, SHUTDOWN_DRAIN_MS, insecureFromEnv, processClock, surviveLmdbWriteFailures } from '@keep/core';
import { bearerToken, grpcServiceDefinition, MAX_MESSAGE_BYTES, RepositoryService, SERVER_KEEPALIVE_OPTIONS } from '@keep/proto';
import { TokenStore } from './auth/tokens.js';
import { keepdRepoOptions, lockDataDir } from './data-lock.js';
import { DedupScopeIndex } from './dedup-scope.js';
import { ensureOwnership } from './ownership.js';
import { createLogger, Logger } from './log.js';
import { Metrics, serverMetrics } from './metrics.js';
import { repositoryService } from './rpc/service.js';
import { SessionManager } from './sessions.js';
import { SyncReport, syncFrom } from './sync/pull.js';
import { ReplicaRegistry } from './replicas.js';
import { reportHoldings, upstreamToken } from './sync/run.js';
import { parseUpstream, Upstream } from './sync/upstream.js';

import { markReplica, readOnlyReason, readRole } from './role.js';
import { CONNECTION_IDLE_MS, DEFAULT_MAX_CONNECTIONS, DEFAULT_MIN_FREE, MAX_CONCURRENT_STREAMS, PREAUTH_TIMEOUT_MS, ROLE_CHECK_INTERVAL_MS } from './limits.js';
import { authFirst } from './net/auth-first.js';
import { ConnectionGate, connectionCap } from './net/connection-limits.js';
import { parseMinFree, StorageSpace } from './storage-space.js';

export interface ServeOptions {
  data: string;
  /** HOST:PORT; port 0 picks a free one */
  listen: string;
  tlsCert?: string;
  tlsKey?: string;
  /** HOST:PORT for Prometheus /metrics */
  metrics?: string;
  clock?: Clock;
  log?: Logger;
  /** pull from this keepd continuously (a replica); token from KEEP_UPSTREAM_TOKEN or KEEP_TOKEN */
  upstream?: string;
  /** seconds between pulls (a replica also pulls at once when its upstream announces a commit) */
  syncIntervalS?: number;
  /** synchronous mode (a primary): commits of `syncTiers` wait until this many replicas hold the snapshot */
  syncReplicas?: number;
  syncTimeoutS?: number;
  /** tiers whose commits wait (default: critical); 'all' for every commit */
  syncTiers?: string[] | 'all';
  /** how often sessions are swept (default SESSION_SWEEP_INTERVAL_MS; tests shorten it) */
  sweepIntervalMs?: number;
  /** free space kept on the data directory's file system (SIZE or PERCENT%): new sessions are refused below it */
  minFree?: string;
  /** connections held at once (default DEFAULT_MAX_CONNECTIONS; never more than the open-file limit allows) */
  maxConnections?: number;
}

export interface RunningServer {
  port: number;
  metricsPort?: number;
  /** stop accepting calls, let in-flight ones finish (bounded), flush sessions, close the index */
  shutdown(): Promise<void>;
}

export function splitHostPort(s: string, what: string): { host: string; port: number } {
  const m = /^\[?([^\]]*?)\]?:(\d+)$/.exec(s);
  if (!m) throw new KeepError('INVALID_ARGUMENT', `${what} takes HOST:PORT, not ${s}`);
  return { host: m[1], port: Number(m[2]) };
}

/**
 * Continuous replication: pull from `upstream` every `intervalS` seconds (one
 * pull at a time); lag and bytes are metrics, and `keepd status` shows them.
 */
function replicate(repo: Repository, upstream: string, intervalS: number, clock: Clock, log: Logger, m: Metrics): () => Promise<void> {
  const up = new Upstream(upstream, upstreamToken(), process.env.KEEP_CA, insecureFromEnv());
  const bytes = m.counter('keep_replication_bytes_total', 'Stored bytes pulled from the upstream');
  let last: SyncReport | undefined;
  m.gauge('keep_replication_lag_seconds', 'Seconds the newest local snapshot is behind the upstream newest', () => last?.lag_s ?? -1);
  m.gauge('keep_replication_snapshots_pending', 'Upstream snapshots not yet here', () => last?.snapshots_pending ?? -1);
  let running: Promise<void> | undefined;
  let again = false;
  let stopped = false;
  const once = () => {
    if (stopped) return;
    if (running) return void (again = true); // a commit announced mid-pull: pull once more after
    running = syncFrom(repo, up, { clock })
      .then(async (r) => {
        last = r;
        bytes({}, r.bytes_fetched);
        await reportHoldings(repo, up, r.snapshots_synced).catch((e: Error) => log.warn({ upstream, err: e.message }, 'report to upstream failed'));
        if (r.snapshots_synced.length || r.snapshots_failed.length) log.info({ upstream, synced: r.snapshots_synced.length, failed: r.snapshots_failed, bytes: r.bytes_fetched, lag_s: r.lag_s }, 'replicated');
      })
      .catch((e: Error) => log.warn({ upstream, err: e.message }, 'replication failed'))
      .finally(() => {
        running = undefined;
        if (again) (again = false), once();
      });
  };
  // Pull when the primary announces a commit; the interval covers a lost stream.
  let watch: ReturnType<Upstream['watchCommits']> | undefined;
  const startWatch = () => {
    if (stopped) return;
    watch = up.watchCommits(() => once());
    watch.done.then(
      () => setTimeout(startWatch, intervalS * 1000).unref(),
      () => setTimeout(startWatch, intervalS * 1000).unref(),
    );
  };
  startWatch();
  once();
  const timer = setInterval(once, intervalS * 1000);
  timer.unref();
  let stopping: Promise<void> | undefined;
  return () =>
    (stopping ??= (async () => {
      stopped = true;
      clearInterval(timer);
      watch?.cancel();
      await running;
      up.close();
    })());
}

export async function serve(o: ServeOptions): Promise<RunningServer> {
  const clock = o.clock ?? processClock();
  const log = o.log ?? createLogger();
  const { host, port } = splitHostPort(o.listen, '--listen');
  if ((o.tlsCert === undefined) !== (o.tlsKey === undefined)) throw new KeepError('INVALID_ARGUMENT', '--tls-cert and --tls-key go together');

  if (o.upstream) parseUpstream(o.upstream, insecureFromEnv()); // refused before anything starts
  const space = new StorageSpace(o.data, parseMinFree(o.minFree ?? DEFAULT_MIN_FREE));
  // A full disk fails the write that hit it (RESOURCE_EXHAUSTED); LMDB's copy of that failure must not end keepd.
  surviveLmdbWriteFailures((e) => log.warn({ err: e.message }, 'index write failed'));
  // One keepd per data directory, held until shutdown (a crashed keepd's lock is taken over).
  const dataLock = lockDataDir(o.data, 'serve');
  let repo: Repository;
  try {
    repo = await Repository.open(o.data, keepdRepoOptions(o.data, { clock }));
    await (async () => {
      if (o.upstream) markReplica(o.data, o.upstream, clock); // read-only until `keepd promote`; refused once promoted
      await ensureOwnership(repo, log);
    })().catch(async (e) => {
      await repo.close();
      throw e;
    });
  } catch (e) {
    dataLock.release();
    throw e;
  }
  const scope = new DedupScopeIndex(repo);
  const sessions = new SessionManager(repo, scope, clock);
  const tokens = new TokenStore(repo, clock);
  const replicas = new ReplicaRegistry(repo, clock);
  const m = new Metrics();
  const metrics = serverMetrics(m);
  m.gauge('keep_sessions_open', 'Writer sessions open', () => sessions.count);
  m.gauge('keep_snapshots', 'Snapshots in the repository', () => repo.snapshots().length);
  m.gauge('keep_blobs', 'Blobs in the index', () => repo.blobCount());
  space.register(m);

  const maxConnections = connectionCap(o.maxConnections ?? DEFAULT_MAX_CONNECTIONS);
  const dropped = m.counter('keep_connections_dropped_total', 'Connections closed by a limit: cap (too many open) or preauth (no authenticated call in time)');
  const gate = new ConnectionGate({ maxConnections, preauthTimeoutMs: PREAUTH_TIMEOUT_MS, onDrop: (reason) => dropped({ reason }) }, (socket) => injector.injectConnection(socket));
  m.gauge('keep_connections_open', 'TCP connections open to keepd', () => gate.count);
  const server = new Server({
    'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
    'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
    ...SERVER_KEEPALIVE_OPTIONS,
    'grpc.max_concurrent_streams': MAX_CONCURRENT_STREAMS,
    'grpc.max_connection_idle_ms': CONNECTION_IDLE_MS,
    interceptors: [
      authFirst(
        (md) => tokens.authenticate(bearerToken(md)),
        (peer) => gate.authenticated(peer),
        (method, code) => metrics.rpc({ method, code: Status[code] }),
      ),
    ],
  });
  server.addService(grpcServiceDefinition(RepositoryService), repositoryService({
      repo,
      tokens,
      sessions,
      scope,
      clock,
      log,
      metrics,
      replicas,
      space,
      syncReplicas: { n: o.syncReplicas ?? 0, timeoutMs: (o.syncTimeoutS ?? 60) * 1000, tiers: o.syncTiers ?? ['critical'] },
      readOnly: () => readOnlyReason(o.data),
    }));
  const creds = o.tlsCert ? ServerCredentials.createSsl(null, [{ cert_chain: fs.readFileSync(o.tlsCert), private_key: fs.readFileSync(o.tlsKey!) }], false) : ServerCredentials.createInsecure();
  // keepd's own listener in front of grpc-js: it counts and limits connections (net/connection-limits.ts).
  const injector = server.createConnectionInjector(creds);
  const bound = await gate.listen(host, port).catch((err: Error) => {
    throw new KeepError('UNAVAILABLE', `cannot listen on ${o.listen}: ${err.message}`);
  });

  let metricsServer: http.Server | undefined;
  let metricsPort: number | undefined;
  if (o.metrics) {
    const mh = splitHostPort(o.metrics, '--metrics');
    metricsServer = await m.listen(mh.host, mh.port);
    metricsPort = (metricsServer.address() as { port: number }).port;
  }
  const stopReplication = o.upstream ? replicate(repo, o.upstream, o.syncIntervalS ?? 60, clock, log, m) : undefined;
  // `keepd promote` (another process) ends the following at once; the role file says so from then on.
  const roleWatch = o.upstream
    ? setInterval(() => {
        if (readRole(o.data)?.role !== 'promoted') return;
        clearInterval(roleWatch);
        log.warn({ upstream: o.upstream, data: o.data }, 'promoted: no longer following the upstream; writes accepted');
        void stopReplication?.();
      }, ROLE_CHECK_INTERVAL_MS)
    : undefined;
  roleWatch?.unref();
  // The sweep also ends sessions past MAX_SESSION_AGE_MS and those of tokens revoked since (`keepd token revoke` is another process).
  const sweeper = setInterval(() => void sessions.sweep((id) => tokens.isRevoked(id)).catch((e) => log.error({ err: e }, 'session sweep failed')), o.sweepIntervalMs ?? SESSION_SWEEP_INTERVAL_MS);
  sweeper.unref();
  log.info({ listen: `${host}:${bound}`, port: bound, tls: Boolean(o.tlsCert), metrics: metricsPort, data: o.data, max_connections: maxConnections }, 'listening');

  let stopping: Promise<void> | undefined;
  return {
    port: bound,
    metricsPort,
    shutdown() {
      stopping ??= (async () => {
        clearInterval(sweeper);
        clearInterval(roleWatch);
        await stopReplication?.();
        replicas.commits.emit('shutdown');
        log.info({}, 'draining');
        gate.close();
        await new Promise<void>((resolve) => {
          const force = setTimeout(() => {
            server.forceShutdown();
            resolve();
          }, SHUTDOWN_DRAIN_MS);
          server.tryShutdown(() => {
            clearTimeout(force);
            resolve();
          });
        });
        await sessions.closeAll();
        metricsServer?.close();
        await repo.close();
        dataLock.release();
        log.info({}, 'stopped');
      })();
      return stopping;
    },
  };
}
