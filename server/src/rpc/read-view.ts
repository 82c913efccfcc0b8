import { BlobView, BlobViews, KeepError } from '@keep/core';
import { canUseSource, Principal } from '../auth/tokens.js';
import type { DedupScopeIndex } from '../dedup-scope.js';

/**
 * Whose bytes a ReadBlobs call gets. An agent token limited to some sources
 * reads only what those sources own (their own copy of a blob first): an id
 * another source stored reads exactly like one never stored. Tokens over
 * every source (admin, replica, an agent without --source) read the first
 * stored copy, or the named `source`'s own copy when it has one (a replica
 * pulling that source's snapshot, a restore of it).
 */
/** An agent token limited to some sources: reads only their blobs. */
export const readsOwnOnly = (p: Principal): boolean => p.role === 'agent' && p.sources.length > 0;

export function readView(d: { repo: { views: BlobViews }; scope: DedupScopeIndex }, p: Principal, source: string): BlobView {
  if (source && !canUseSource(p, source)) throw new KeepError('PERMISSION_DENIED', `this token may not read source ${source}`);
  if (readsOwnOnly(p)) return d.scope.viewOfAny(source ? [source] : p.sources);
  return source ? d.repo.views.ofSource(source) : d.repo.views.primary;
}
