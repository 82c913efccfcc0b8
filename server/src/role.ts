import fs from 'node:fs';
import path from 'node:path';
import { atomicWrite, Clock, KeepError } from '@keep/core';

/**
 * Whether this data directory is a replica (DATA/role.json). A replica
 * follows an upstream and refuses every write through the RPCs (sessions,
 * commits, keys) for every role, so a failover cannot split the repository
 * in two by accident: only its own sync writes into it. `keepd promote`
 * makes it a primary for good: it stops following and takes writes.
 */
export interface RoleRecord {
  role: 'replica' | 'promoted';
  /** the upstream it follows (followed, once promoted) */
  upstream: string;
  since: string;
  promoted_at?: string;
}

const file = (data: string) => path.join(data, 'role.json');

export function readRole(data: string): RoleRecord | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file(data), 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  try {
    const r = JSON.parse(text) as RoleRecord;
    if (r.role === 'replica' || r.role === 'promoted') return r;
  } catch {
    // fall through
  }
  // Unreadable: read-only is the safe answer (promote rewrites it).
  return { role: 'replica', upstream: '(unknown: role.json is damaged)', since: '' };
}

/** This directory follows `upstream` (keepd serve --upstream, a replica created by keepd sync); refused once promoted. */
export function markReplica(data: string, upstream: string, clock: Clock): void {
  const r = readRole(data);
  if (r?.role === 'promoted') {
    throw new KeepError('INVALID_ARGUMENT', `${data} was promoted to a primary at ${r.promoted_at} (it followed ${r.upstream}) and follows no upstream any more: serve it without --upstream, or sync a new replica`);
  }
  if (r?.role === 'replica' && r.upstream === upstream) return;
  atomicWrite(file(data), JSON.stringify({ role: 'replica', upstream, since: new Date(clock.now()).toISOString() } satisfies RoleRecord, null, 2) + '\n');
}

/** Why a write must be refused here, or undefined on a primary (or a promoted replica). */
export function readOnlyReason(data: string): string | undefined {
  const r = readRole(data);
  if (r?.role !== 'replica') return undefined;
  return `this keepd is a read-only replica of ${r.upstream}: back up to the primary, or promote this replica first (keepd promote --data DIR on its host)`;
}

/** `keepd promote`: the replica stops following its upstream and takes writes, recorded in role.json. */
export function promote(data: string, clock: Clock): RoleRecord & { already: boolean } {
  const r = readRole(data);
  if (!r) throw new KeepError('INVALID_ARGUMENT', `${data} is not a replica (no role.json): nothing to promote`);
  if (r.role === 'promoted') return { ...r, already: true };
  const promoted: RoleRecord = { ...r, role: 'promoted', promoted_at: new Date(clock.now()).toISOString() };
  atomicWrite(file(data), JSON.stringify(promoted, null, 2) + '\n');
  return { ...promoted, already: false };
}
