/**
 * An upload stream's revocation check (server/src/auth/revocation.ts) on a
 * clock the test moves, against a real token table: the token record is read
 * at most once per REVOCATION_RECHECK_MS (not for every blob), and a revoke
 * is seen by the first check that long after the last read.
 */
import path from 'node:path';
import { ManualClock, Repository } from '@keep/core';
import { REVOCATION_RECHECK_MS, revocationCheck } from '@keep/server/dist/auth/revocation.js';
import { TokenStore } from '@keep/server/dist/auth/tokens.js';
import { describe, expect, it } from 'vitest';
import { tempDirs } from './helpers.js';

describe('revocationCheck', () => {
  const tmp = tempDirs();

  it('reads the token record at most once per REVOCATION_RECHECK_MS; a revoke ends the stream at the first check that long after', async () => {
    const clock = new ManualClock(1_000_000);
    const repo = await Repository.init(path.join(tmp.make('keep-revocation-'), 'data'), { clock });
    try {
      const tokens = new TokenStore(repo, clock);
      const { token } = await tokens.create('agent');
      const p = tokens.authenticate(token);
      const check = revocationCheck(tokens, p, clock);
      check(); // the first message reads the record
      await tokens.revoke(p.tokenId);
      // within the bound: the last read still counts (no read per blob)
      check();
      clock.advance(REVOCATION_RECHECK_MS - 1);
      check();
      // the bound passed: the next message reads the record again and ends the stream
      clock.advance(1);
      expect(check).toThrow(/revoked/);
      // a stream opened after the revoke reads it at its first message
      expect(() => revocationCheck(tokens, p, clock)()).toThrow(/revoked/);
    } finally {
      await repo.close();
    }
  });
});
