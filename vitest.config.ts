import os from 'node:os';
import path from 'node:path';
import { defineConfig } from 'vitest/config';
import SlowestFirst from './test/slow-first-sequencer.js';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Tests spawn real keep/keepd processes; two cores are enough for two files at a time.
    maxWorkers: 2,
    // the longest files first (test/slow-first-sequencer.ts): a fresh clone has no cache of durations
    sequence: { sequencer: SlowestFirst },
    reporters: ['default', './test/summary-reporter.ts'],
    // The agent's cache (remembered KDF parameters) goes to a scratch place, not the home directory.
    env: { XDG_CACHE_HOME: path.join(os.tmpdir(), `keep-test-cache-${process.pid}`) },
  },
});
