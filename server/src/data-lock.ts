import path from 'node:path';
import { acquirePidLock, KeepError, PidLock, Repository, RepositoryOptions } from '@keep/core';

/** Held by `keepd serve` (and rebuild-index, which replaces the index a server would still write to). */
export const DATA_LOCK = 'keepd.lock';

/** NOT_A_REPOSITORY (exit 10) naming keepd's cure, not the agent's `keep init`. */
export function requireRepository(data: string): void {
  if (!Repository.exists(data)) throw new KeepError('NOT_A_REPOSITORY', `${data} is not a Keep repository (no config.json); run \`keepd init --data ${data}\` first`);
}

/**
 * One keepd per data directory: two servers on one directory would each
 * keep sessions and leases the other cannot see. LOCKED (exit 11) while a
 * live keepd holds it; a dead one's lock is taken over.
 */
export function lockDataDir(data: string, what: 'serve' | 'rebuild-index'): PidLock {
  requireRepository(data);
  return acquirePidLock(path.join(data, DATA_LOCK), what, (h) => (h.what === 'serve' ? `keepd serve is already running on ${data} (pid ${h.pid}); stop it first` : `keepd ${h.what || 'serve'} is running on ${data} (pid ${h.pid})`));
}

/** How keepd opens its repository: a damaged index is an error that names the cure, never rebuilt behind the operator's back. */
export function keepdRepoOptions(data: string, opts: RepositoryOptions = {}): RepositoryOptions {
  return { ...opts, indexRepairHint: `run \`keepd rebuild-index --data ${data}\`` };
}
