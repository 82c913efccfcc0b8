import { KeepError } from '../errors.js';
import type { NewSnapshot, Snapshot } from './snapshot.js';

/** A rewritten record (`keep tag`) as its writer sends it: its own id and MAC. */
export type Replacement = NewSnapshot & { id: string };

/**
 * What a rewrite may change (restic's `tag`): the id, the tags, the MAC and
 * `original` (the first record's id, kept through later rewrites). Anything
 * else would let a rewrite re-date or re-root a snapshot while it keeps the
 * old record's server_time, so the repository refuses it.
 */
export function checkReplacement(old: Snapshot, next: Replacement): void {
  const refuse = (why: string) => new KeepError('INVALID_ARGUMENT', `a rewrite of snapshot ${old.id} may change only its tags: ${why}`);
  if (!/^[0-9a-f]{32}$/.test(next.id)) throw new KeepError('INVALID_ARGUMENT', `bad snapshot id ${next.id}`);
  if (next.id === old.id) throw refuse('it needs a new id');
  if (next.mac !== undefined && !/^[0-9a-f]{64}$/.test(next.mac)) throw new KeepError('INVALID_ARGUMENT', 'snapshot mac must be 64 hex digits');
  const same = (k: keyof NewSnapshot) => JSON.stringify(old[k] ?? null) === JSON.stringify(next[k] ?? null);
  for (const k of ['source', 'host', 'time', 'parent', 'root', 'tier', 'stats', 'paths_group', 'sealed_meta'] as const) if (!same(k)) throw refuse(`its ${k} differs`);
  if (next.original !== (old.original ?? old.id)) throw refuse(`its original must be ${old.original ?? old.id}`);
}
