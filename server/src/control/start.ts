import type { Clock, Repository } from '@keep/core';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import type { ReplicaRegistry } from '../replicas.js';
import type { DrillStore } from '../drills.js';
import type { RunReportStore } from '../run-reports.js';
import type { StorageSpace } from '../storage-space.js';
import type { KeepdConfig } from './config.js';
import { Alerts } from './alerts.js';
import { registerControlMetrics } from './control-metrics.js';
import { Maintenance } from './maintenance.js';
import { Watchdog } from './watchdog.js';
import { WatchStore } from './watch-store.js';

/** keepd serve's control plane: the watchdog, its alerts, scheduled maintenance and their metrics; `stop` before the repository closes. */
export function startControl(o: { repo: Repository; runs: RunReportStore; drills: DrillStore; replicas: ReplicaRegistry; space: StorageSpace; data: string; config: KeepdConfig; clock: Clock; log: Logger; m: Metrics }) {
  const store = new WatchStore(o.repo);
  const watchdog = new Watchdog({ ...o, store });
  const maintenance = new Maintenance(o.repo, o.config, o.clock, store, o.log);
  const alerts = new Alerts(o.repo, o.config, store, o.clock, o.log);
  registerControlMetrics(o.m, { ...o, watchdog, store });
  // alerts follow the watchdog from before its first evaluation; deliveries are tried at the watchdog's pace, at least once a second
  alerts.start(watchdog, Math.min(1000, watchdog.intervalMs));
  watchdog.start();
  maintenance.start();
  return {
    watchdog,
    maintenance,
    alerts,
    async stop() {
      await maintenance.stop();
      await watchdog.stop();
      await alerts.stop();
    },
  };
}
