import { BaseSequencer, type TestSpecification } from 'vitest/node';

/**
 * The test files that took 25 s or more in a fresh-clone CI run (2026-12-06,
 * 747 tests, 2,392 s of test time on two workers), slowest first. A fresh
 * clone has no vitest cache of durations, so files ran in path order and the
 * longest ones (object storage on RGW, 157 s; the watchdog, 67 s) could start
 * late and leave one worker running them alone at the end. Started first,
 * the two workers finish nearer together. A file missing from the list runs
 * after these, in vitest's own order.
 */
const SLOWEST_FIRST = [
  'keepd-object-storage', 'gc-crash-keepd', 'gc-crash-prune', 'watchdog', 'pg-pitr', 'drill-postgres',
  'backup-unchanged-cache', 'alerts', 'gc-prune-safety', 'gc-concurrent', 'dashboard', 'cli-help',
  'grpc-cross-source', 'find-dump-cat', 'local-commands', 'agent-service', 'maintenance-lock',
  'selection-backup', 'drill', 'index-damage', 'preauth-limits', 'sync-resume', 'gc-retention',
  'restore-options', 'agent-postgres', 'package', 'control-replica-lag', 'local-safety', 'keep-admin',
  'sync-pull', 'backup-pipeline', 'control-storage-alert', 'agent-done-when', 'demo', 'credentials',
  'audit-log', 'grpc-auth',
];

export default class SlowestFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const rank = (f: TestSpecification) => {
      const i = SLOWEST_FIRST.findIndex((name) => f.moduleId.endsWith(`/test/${name}.test.ts`));
      return i < 0 ? SLOWEST_FIRST.length : i;
    };
    const sorted = await super.sort(files);
    return sorted.map((f, i) => ({ f, i })).sort((a, b) => rank(a.f) - rank(b.f) || a.i - b.i).map(({ f }) => f);
  }
}
