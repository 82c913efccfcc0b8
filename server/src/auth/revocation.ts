import type { Clock } from '@keep/core';
import type { Principal, TokenStore } from './tokens.js';

/**
 * How long a stream goes on trusting its token's last revocation check. A
 * revoke (`keepd token revoke`, another process) ends the token's streams at
 * their first message this long after it, at the latest. Reading the token
 * record for every message (an LMDB read and a decode per blob) cost more
 * than the rest of a small blob's bookkeeping.
 */
export const REVOCATION_RECHECK_MS = 250;

/**
 * One stream's revocation check: UNAUTHENTICATED once `p`'s token is
 * revoked, reading the token record at most once per `everyMs` of `clock`.
 */
export function revocationCheck(tokens: TokenStore, p: Principal, clock: Clock, everyMs = REVOCATION_RECHECK_MS): () => void {
  let checkedAt = -Infinity;
  return () => {
    const now = clock.now();
    if (now - checkedAt < everyMs && now >= checkedAt) return;
    tokens.assertActive(p);
    checkedAt = now;
  };
}
