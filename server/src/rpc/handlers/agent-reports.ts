import { KeepError } from '@keep/core';
import { canUseSource, Principal } from '../../auth/tokens.js';
import type { ServiceDeps } from '../call.js';

/**
 * What ReportRuns and ReportDrills take from an agent, checked alike: at most
 * `max` per call, each decoded (and validated), each of a source the token
 * may use; a replica not promoted keeps no reports of its own, so it answers
 * UNAVAILABLE (not a refusal: the agent keeps them for the writable keepd).
 */
export function acceptReports<W, R extends { source: string }>(d: ServiceDeps, p: Principal, wire: W[], o: { max: number; noun: string; decode: (w: W) => R }): R[] {
  if (wire.length > o.max) throw new KeepError('INVALID_ARGUMENT', `at most ${o.max} ${o.noun} reports per call`);
  const reports = wire.map(o.decode);
  for (const r of reports) if (!canUseSource(p, r.source)) throw new KeepError('PERMISSION_DENIED', `this token may not report ${o.noun}s of source ${r.source}`);
  const readOnly = d.readOnly?.();
  if (readOnly) throw new KeepError('UNAVAILABLE', readOnly);
  return reports;
}
