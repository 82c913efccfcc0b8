import { Clock, insecureFromEnv, Repository } from '@keep/core';
import { ROLE_CHECK_INTERVAL_MS } from '../limits.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { readRole } from '../role.js';
import { SyncReport, syncFrom } from './pull.js';
import { reportHoldings, upstreamToken } from './run.js';
import { audit, LOCAL } from '../audit/log.js';
import { syncFields } from '../audit/events.js';
import { Upstream } from './upstream.js';
import { keepUpstreamAuditHead } from '../audit/replicated.js';

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
        await keepUpstreamAuditHead(repo, up, upstream).catch((e: Error) => log.warn({ upstream, err: e.message }, 'audit head from upstream failed'));
        if (r.snapshots_synced.length || r.snapshots_failed.length) await audit(repo).record('sync', LOCAL, syncFields(r));
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

/**
 * A replica keepd following its upstream (replicate, above) until `keepd
 * promote` (another process) ends the following: the role file says so from
 * then on, read every ROLE_CHECK_INTERVAL_MS. The returned stop ends both.
 */
export function followUpstream(data: string, repo: Repository, upstream: string, intervalS: number, clock: Clock, log: Logger, m: Metrics): () => Promise<void> {
  const stopReplication = replicate(repo, upstream, intervalS, clock, log, m);
  const roleWatch = setInterval(() => {
    if (readRole(data)?.role !== 'promoted') return;
    clearInterval(roleWatch);
    log.warn({ upstream, data }, 'promoted: no longer following the upstream; writes accepted');
    void stopReplication();
  }, ROLE_CHECK_INTERVAL_MS);
  roleWatch.unref();
  return async () => {
    clearInterval(roleWatch);
    await stopReplication();
  };
}
