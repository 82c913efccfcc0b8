import { describe, expect, it } from 'vitest';
import { checkRunReport, deriveKeys, newMasterKey, openMeta, openRunDetail, RunReport, sealMeta, sealRunDetail } from '@keep/core';
import { expectKeepError } from './util.js';

describe('run reports', () => {
  const keys = deriveKeys(newMasterKey());

  it('seals the error text and warnings for key holders only', () => {
    const sealed = sealRunDetail(keys, { error: 'cannot read /srv/a.csv', warnings: ['skipped /srv/b'] });
    expect(Buffer.from(sealed, 'base64').toString('latin1')).not.toContain('/srv/');
    expect(openRunDetail(keys, sealed)).toEqual({ error: 'cannot read /srv/a.csv', warnings: ['skipped /srv/b'] });
    expect(openRunDetail(deriveKeys(newMasterKey()), sealed)).toBeUndefined();
    // a snapshot's sealed_meta never opens as a run's detail (another subkey and label)
    expect(openRunDetail(keys, sealMeta(keys, { paths: ['/x'], username: 'u' }).sealed_meta)).toBeUndefined();
    expect(openMeta(keys, { sealed_meta: sealed })).toBeUndefined();
  });

  it('takes labels, counts and an error class, never text', () => {
    const ok: RunReport = { id: 'ab'.repeat(16), source: 'db', job: 'nightly', kind: 'command', reason: 'scheduled', attempt: 1, start_ms: 1, end_ms: 2, result: 'failure', files: 0, bytes: 0, error_class: 'exit 3', warnings: 0 };
    expect(checkRunReport(ok)).toBe(ok);
    expect(checkRunReport({ ...ok, error_class: 'UNAVAILABLE' }).error_class).toBe('UNAVAILABLE');
    for (const bad of [{ error_class: 'cannot read /srv/a.csv' }, { job: 'a job with /srv/path' }, { kind: 'drill' }, { id: 'x' }, { result: 'ok' }, { end_ms: 0 }, { sealed_detail: 'not base64!' }]) {
      expectKeepError(() => checkRunReport({ ...ok, ...bad } as RunReport), 'INVALID_ARGUMENT');
    }
  });
});
