import { KeepError, parseTime, pickAt, resolveSnapshot, Snapshot } from '@keep/core';
import type { RepoConnection } from '../repo/connection.js';

/**
 * SNAPSHOT|latest, narrowed by --source, or --at TIME: the newest snapshot
 * (of the source, if given) taken at or before TIME.
 */
export async function selectSnapshot(conn: RepoConnection, ref: string | undefined, opts: { source?: string; at?: string }): Promise<Snapshot> {
  const all = await conn.snapshots(opts.source ? { source: opts.source } : {});
  if (opts.at) {
    if (ref && ref !== 'latest') throw new KeepError('INVALID_ARGUMENT', '--at picks the snapshot itself; give `latest` or no snapshot id with it');
    const s = pickAt(all, parseTime(opts.at));
    if (!s) throw new KeepError('NOT_FOUND', `no snapshot${opts.source ? ` of source ${opts.source}` : ''} at or before ${opts.at}`);
    return s;
  }
  if (!ref) throw new KeepError('INVALID_ARGUMENT', 'name a snapshot (an id, an id prefix, or latest)');
  return resolveSnapshot(all, ref);
}
