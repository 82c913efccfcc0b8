import { describe, expect, it } from 'vitest';
import { checkDrillReport, defaultDrillIntervalMs, DrillReport } from '@keep/core';
import { expectKeepError } from './util.js';

describe('drill reports', () => {
  it('take ids, counts, times and an error class, never text', () => {
    const ok: DrillReport = { id: 'ab'.repeat(16), source: 'db', snapshot: 'cd'.repeat(16), kind: 'files', mode: 'write', result: 'failure', start_ms: 1, end_ms: 2, duration_ms: 900, setup_ms: 100, files: 3, bytes: 10, files_verified: 3, verify_failures: 1, error_class: 'CORRUPT' };
    expect(checkDrillReport(ok)).toBe(ok);
    for (const bad of [{ error_class: 'chunk of /srv/a.csv damaged' }, { snapshot: '/srv/x' }, { kind: 'tape' }, { mode: 'maybe' }, { id: 'x' }, { result: 'ok' }, { end_ms: 0 }, { setup_ms: 901 }, { bytes: -1 }, { files: 1.5 }]) {
      expectKeepError(() => checkDrillReport({ ...ok, ...bad } as DrillReport), 'INVALID_ARGUMENT');
    }
  });

  it('default to monthly drills, weekly for the critical tier', () => {
    expect(defaultDrillIntervalMs(undefined)).toBe(30 * 86_400_000);
    expect(defaultDrillIntervalMs('standard')).toBe(30 * 86_400_000);
    expect(defaultDrillIntervalMs('critical')).toBe(7 * 86_400_000);
  });
});
