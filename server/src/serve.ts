import type http from 'node:http';
import { Clock, KeepError, Repository, SESSION_SWEEP_INTERVAL_MS, insecureFromEnv, processClock, surviveLmdbWriteFailures, type WriterHold } from '@keep/core';
import { TokenStore } from './auth/tokens.js';
import { keepdRepoOptions, lockDataDir } from './data-lock.js';
import { DedupScopeIndex } from './dedup-scope.js';
import { ensureOwnership } from './ownership.js';
import { createLogger, Logger } from './log.js';
import { listenMetrics, Metrics, registerHoldings, serverMetrics } from './metrics.js';
import { splitHostPort } from './net/host-port.js';
import { listenGrpc } from './net/listener.js';
import { repositoryService } from './rpc/service.js';
import { SessionManager } from './sessions.js';
import { ReplicaRegistry } from './replicas.js';
import { DrillStore } from './drills.js';
import { RunReportStore } from './run-reports.js';
import { followUpstream } from './sync/follow.js';
import { parseUpstream } from './sync/upstream.js';
import { markReplica, readOnlyReason } from './role.js';
import { DEFAULT_MAX_CONNECTIONS, DEFAULT_MIN_FREE } from './limits.js';
import { parseMinFree, StorageSpace } from './storage-space.js';
import { startControl } from './control/start.js';
import type { KeepdConfig } from './control/config.js';
import type { Watchdog } from './control/watchdog.js';
import { startAuditRetention } from './audit/retention.js';
import { audit } from './audit/log.js';
import { listenDashboard, requireSafeDashboard } from './web/dashboard-server.js';

export interface ServeOptions {
  data: string;
  /** HOST:PORT; port 0 picks a free one */
  listen: string;
  tlsCert?: string;
  tlsKey?: string;
  /** HOST:PORT for Prometheus /metrics */
  metrics?: string;
  /** HOST:PORT for the operators' dashboard (web/), HTTPS under tlsCert/tlsKey */
  http?: string;
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
  /** keepd.yaml, loaded (control/config.ts): policies, the watchdog, maintenance schedules */
  config?: KeepdConfig;
  /** audit records older than this go, a segment at a time (default DEFAULT_AUDIT_RETENTION) */
  auditRetentionMs?: number;
}

export interface RunningServer {
  port: number;
  metricsPort?: number;
  httpPort?: number;
  watchdog: Watchdog;
  /** stop accepting calls, let in-flight ones finish (bounded), flush sessions, close the index */
  shutdown(): Promise<void>;
}

export async function serve(o: ServeOptions): Promise<RunningServer> {
  const clock = o.clock ?? processClock();
  const log = o.log ?? createLogger();
  const { host, port } = splitHostPort(o.listen, '--listen');
  if ((o.tlsCert === undefined) !== (o.tlsKey === undefined)) throw new KeepError('INVALID_ARGUMENT', '--tls-cert and --tls-key go together');

  if (o.upstream) parseUpstream(o.upstream, insecureFromEnv()); // refused before anything starts
  const scheduledSync = o.config?.maintenance?.sync;
  if (scheduledSync && o.upstream) throw new KeepError('INVALID_ARGUMENT', 'give --upstream (follow continuously) or maintenance.sync in keepd.yaml (pull on a schedule), not both');
  for (const u of scheduledSync?.upstreams ?? []) parseUpstream(u, insecureFromEnv());
  const followed = o.upstream ?? scheduledSync?.upstreams[0];
  if (o.http) requireSafeDashboard(o.http, o.tlsCert !== undefined);
  const space = new StorageSpace(o.data, parseMinFree(o.minFree ?? DEFAULT_MIN_FREE));
  // A full disk fails the write that hit it (RESOURCE_EXHAUSTED); LMDB's copy of that failure must not end keepd.
  surviveLmdbWriteFailures((e) => log.warn({ err: e.message }, 'index write failed'));
  // One keepd per data directory, held until shutdown (a crashed keepd's lock is taken over).
  const dataLock = lockDataDir(o.data, 'serve');
  let repo: Repository;
  let writer: WriterHold | undefined;
  try {
    repo = await Repository.open(o.data, keepdRepoOptions(o.data, { clock }));
    await (async () => {
      // a bucket is written by one keepd at a time (its writer lease; a data directory has dataLock)
      writer = await repo.holdWriter('keepd serve');
      if (followed) markReplica(o.data, followed, clock); // read-only until `keepd promote`; refused once promoted
      await ensureOwnership(repo, log);
      // packs a killed keepd published but never wrote an index segment for (an accelerator: a failure only warns)
      const recovered = await repo.recoverIndexSegments().catch((e: Error) => {
        log.warn({ err: e.message }, 'could not write the index segment a stopped keepd left');
        return 0;
      });
      if (recovered) log.info({ packs: recovered }, 'wrote the index segment a stopped keepd left unwritten');
    })().catch(async (e) => {
      await writer?.release().catch(() => undefined);
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
  const runs = new RunReportStore(repo, clock);
  const drills = new DrillStore(repo, clock);
  const m = new Metrics();
  const metrics = serverMetrics(m);
  registerHoldings(m, { sessions, repo, space });
  const control = startControl({ repo, runs, drills, replicas, space, data: o.data, config: o.config ?? {}, clock, log, m });
  m.gauge('keep_audit_head_seq', 'The audit log\'s newest checkpointed record (its hash is in state.mdb)', () => audit(repo).headSeq());

  const listener = await listenGrpc({
    listen: o.listen,
    host,
    port,
    tlsCert: o.tlsCert,
    tlsKey: o.tlsKey,
    maxConnections: o.maxConnections ?? DEFAULT_MAX_CONNECTIONS,
    tokens,
    m,
    metrics,
    service: repositoryService({
      repo,
      tokens,
      sessions,
      scope,
      clock,
      log,
      metrics,
      replicas,
      runs,
      drills,
      space,
      syncReplicas: { n: o.syncReplicas ?? 0, timeoutMs: (o.syncTimeoutS ?? 60) * 1000, tiers: o.syncTiers ?? ['critical'] },
      readOnly: () => readOnlyReason(o.data),
    }),
  });
  const bound = listener.port;

  let metricsServer: http.Server | undefined;
  let metricsPort: number | undefined;
  if (o.metrics) ({ server: metricsServer, port: metricsPort } = await listenMetrics(m, o.metrics));
  let httpServer: http.Server | undefined;
  let httpPort: number | undefined;
  if (o.http) ({ server: httpServer, port: httpPort } = await listenDashboard({ listen: o.http, tlsCert: o.tlsCert, tlsKey: o.tlsKey, repo, data: o.data, clock, space, served: { replicas, runs }, tokens, log }));
  // A replica follows its upstream until `keepd promote` (sync/follow.ts).
  const stopFollowing = o.upstream ? followUpstream(o.data, repo, o.upstream, o.syncIntervalS ?? 60, clock, log, m) : undefined;
  // The sweep also ends sessions past MAX_SESSION_AGE_MS and those of tokens revoked since (`keepd token revoke` is another process).
  const sweeper = setInterval(() => void sessions.sweep((id) => tokens.isRevoked(id)).catch((e) => log.error({ err: e }, 'session sweep failed')), o.sweepIntervalMs ?? SESSION_SWEEP_INTERVAL_MS);
  sweeper.unref();
  const stopAuditRetention = startAuditRetention(repo, o.auditRetentionMs, log);
  log.info({ listen: `${host}:${bound}`, port: bound, tls: Boolean(o.tlsCert), metrics: metricsPort, http: httpPort, data: o.data, max_connections: listener.maxConnections }, 'listening');

  let stopping: Promise<void> | undefined;
  return {
    port: bound,
    metricsPort,
    httpPort,
    watchdog: control.watchdog,
    shutdown() {
      stopping ??= (async () => {
        clearInterval(sweeper);
        await control.stop();
        stopAuditRetention();
        await stopFollowing?.();
        replicas.commits.emit('shutdown');
        log.info({}, 'draining');
        await listener.drain();
        await sessions.closeAll();
        metricsServer?.close();
        httpServer?.close();
        httpServer?.closeAllConnections();
        await audit(repo).flush(); // records nobody awaited (a token's new peer) are durable before the state store closes
        await repo.flushIndexSegments(); // while this keepd still holds the right to write
        await writer?.release().catch((e: Error) => log.warn({ err: e.message }, 'could not give the writer lease back (it expires by itself)'));
        await repo.close();
        dataLock.release();
        log.info({}, 'stopped');
      })();
      return stopping;
    },
  };
}
