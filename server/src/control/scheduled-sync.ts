import { Clock, insecureFromEnv, KeepError, Repository } from '@keep/core';
import { audit, LOCAL } from '../audit/log.js';
import { syncFields } from '../audit/events.js';
import type { Logger } from '../log.js';
import { readRole } from '../role.js';
import { syncFrom } from '../sync/pull.js';
import { reportHoldings, syncFailure, upstreamToken } from '../sync/run.js';
import { Upstream } from '../sync/upstream.js';

export interface ScheduledSyncOptions {
  upstreams: string[];
  source?: string;
}

/**
 * One scheduled `sync` inside a serving keepd: the sync engine (sync/pull.ts)
 * on the repository keepd already holds open, from each upstream in turn,
 * each pull audited and reported to its upstream (lag and synchronous mode
 * there). Throws when any upstream failed or left a snapshot unsynced, after
 * trying them all, so the run is recorded as failed and raises the
 * maintenance alert; a promoted replica syncs from no upstream any more.
 */
export async function syncUpstreams(repo: Repository, o: ScheduledSyncOptions, clock: Clock, log: Logger): Promise<Record<string, unknown>> {
  if (readRole(repo.dir)?.role === 'promoted') throw new KeepError('INVALID_ARGUMENT', `${repo.dir} was promoted to a primary: it syncs from no upstream any more (remove maintenance.sync from keepd.yaml)`);
  const errors: string[] = [];
  let synced = 0;
  let bytes = 0;
  let lag = 0;
  for (const location of o.upstreams) {
    const up = new Upstream(location, upstreamToken(), process.env.KEEP_CA, insecureFromEnv());
    try {
      const r = await syncFrom(repo, up, { source: o.source, clock });
      // each run is audited as maintenance.*; a pull record only when snapshots moved (as the follower does)
      if (r.snapshots_synced.length || r.snapshots_failed.length) await audit(repo).record('sync', LOCAL, { ...syncFields(r), scheduled: true });
      await reportHoldings(repo, up, r.snapshots_synced).catch((e: Error) => log.warn({ upstream: location, err: e.message }, 'report to upstream failed'));
      synced += r.snapshots_synced.length;
      bytes += r.bytes_fetched;
      lag = Math.max(lag, r.lag_s);
      const failed = syncFailure(r);
      if (failed) errors.push(`${location}: ${failed.message}`);
    } catch (e) {
      errors.push(`${location}: ${(e as Error).message}`);
    } finally {
      up.close();
    }
  }
  if (errors.length) throw new KeepError('UNAVAILABLE', errors.join('; '));
  return { upstreams: o.upstreams.length, snapshots_synced: synced, bytes_fetched: bytes, lag_s: lag };
}
