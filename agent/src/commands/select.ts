import { byTime, judgeSnapshots, JudgedSnapshot, KeepError, parseTime, pickAt, RepoKeys, resolveSnapshot, Snapshot } from '@keep/core';
import { describe, SelectOptions, stderrWarn, usable, warnSkipped } from '../repo/authentic.js';

export { allowUnauthenticated } from '../repo/authentic.js';

/** Refuse a record named explicitly unless it may be used. */
function refuseUnusable(j: JudgedSnapshot, allow: boolean): void {
  if (j.auth.state === 'forged') throw new KeepError('CORRUPT', `snapshot ${describe(j.snapshot)} failed authentication: ${j.auth.reason}; refusing to use it`);
  if (j.auth.state === 'unauthenticated' && !allow) {
    throw new KeepError('INVALID_ARGUMENT', `snapshot ${describe(j.snapshot)} has no MAC (written before snapshot records were authenticated): keepd could have forged it; --allow-unauthenticated uses it anyway`);
  }
}

/**
 * SNAPSHOT|latest, narrowed by --source, or --at TIME: the newest snapshot
 * (of the source, if given) recorded at or before TIME. `list` is the
 * repository's listing (of the source, if given).
 */
export function selectSnapshot(keys: RepoKeys, list: Snapshot[], ref: string | undefined, opts: SelectOptions = {}): Snapshot {
  const warn = opts.warn ?? stderrWarn;
  const allow = !!opts.allowUnauthenticated;
  const judged = judgeSnapshots(keys.snapshotMacKey, [...list].sort(byTime));
  const candidates = judged.filter((j) => usable(j, allow)).map((j) => j.snapshot);
  const ofSource = opts.source ? ` of source ${opts.source}` : '';
  if (opts.at || ref === 'latest') {
    if (opts.at && ref && ref !== 'latest') throw new KeepError('INVALID_ARGUMENT', '--at picks the snapshot itself; give `latest` or no snapshot id with it');
    const at = opts.at ? parseTime(opts.at) : Infinity;
    const s = opts.at ? pickAt(candidates, at) : candidates[candidates.length - 1];
    warnSkipped(judged, allow, s, at, warn);
    const skipped = judged.length > candidates.length ? ' that can be used (the others were skipped: see the warnings)' : '';
    if (!s) throw new KeepError('NOT_FOUND', `no snapshot${ofSource}${opts.at ? ` at or before ${opts.at}` : ''}${skipped}`);
    return s;
  }
  if (!ref) throw new KeepError('INVALID_ARGUMENT', 'name a snapshot (an id, an id prefix, or latest)');
  const s = resolveSnapshot(judged.map((j) => j.snapshot), ref);
  refuseUnusable(judged.find((j) => j.snapshot === s)!, allow);
  return s;
}
