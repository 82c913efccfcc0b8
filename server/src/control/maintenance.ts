import { Clock, forgetSnapshots, prune, Repository } from '@keep/core';
import { PlannedRuns } from '@keep/core/config';
import { audit, KEEPD } from '../audit/log.js';
import { forgetFields, pruneFields } from '../audit/events.js';
import type { Logger } from '../log.js';
import type { KeepdConfig } from './config.js';
import type { ScheduleInput } from './config-schema.js';
import { matchPolicy, policyFor } from './policies.js';
import { syncUpstreams } from './scheduled-sync.js';
import type { MaintenanceRun, WatchStore } from './watch-store.js';

export const MAINTENANCE_TASKS = ['forget_prune', 'check', 'sync'] as const;
export type MaintenanceTask = (typeof MAINTENANCE_TASKS)[number];

/** The next run after `now` (keepd's clock, ms). */
export function nextRunAt(s: ScheduleInput, now: number): number {
  return new PlannedRuns(s.cron, s.every).after(now);
}

/**
 * Scheduled maintenance inside keepd: forget (each configured source's
 * retention, core's forget engine) then prune, `check` with a read subset,
 * and a replica's `sync` from its upstreams (scheduled-sync.ts), on keepd's
 * clock. Each run is recorded in state.mdb with its
 * outcome; the watchdog turns a failed one into a critical condition.
 */
export class Maintenance {
  private readonly timers = new Map<MaintenanceTask, NodeJS.Timeout>();
  private busy?: Promise<unknown>;
  private stopped = false;

  constructor(
    private readonly repo: Repository,
    private readonly config: KeepdConfig,
    private readonly clock: Clock,
    private readonly store: WatchStore,
    private readonly log: Logger,
  ) {}

  start(): void {
    for (const task of MAINTENANCE_TASKS) if (this.config.maintenance?.[task]) this.schedule(task);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers.values()) clearTimeout(t);
    await this.busy?.catch(() => undefined);
  }

  private schedule(task: MaintenanceTask): void {
    if (this.stopped) return;
    const now = this.clock.now();
    const delay = nextRunAt(this.config.maintenance![task]!.schedule, now) - now;
    if (!Number.isFinite(delay)) return;
    // setTimeout holds at most ~24.8 days; a longer wait re-plans then
    const t = setTimeout(() => void this.run(task).finally(() => this.schedule(task)), Math.min(Math.max(delay, 0), 2 ** 31 - 1));
    t.unref();
    this.timers.set(task, t);
  }

  /** Run `task` now (one task at a time), record it, and resolve with the record. */
  async run(task: MaintenanceTask): Promise<MaintenanceRun> {
    while (this.busy) await this.busy.catch(() => undefined);
    const p = this.execute(task);
    this.busy = p;
    try {
      return await p;
    } finally {
      this.busy = undefined;
    }
  }

  private async execute(task: MaintenanceTask): Promise<MaintenanceRun> {
    const start = this.clock.now();
    let run: MaintenanceRun;
    try {
      const result = await this.perform(task);
      run = { task, start_ms: start, end_ms: this.clock.now(), outcome: 'success', result };
    } catch (e) {
      run = { task, start_ms: start, end_ms: this.clock.now(), outcome: 'failure', error: (e as Error).message };
    }
    await this.store.recordRun(run);
    await audit(this.repo).event(`maintenance.${run.outcome}`, { task, ...(run.error ? { error_class: 'error' } : {}) });
    if (run.outcome === 'failure') this.log.error({ task, err: run.error }, 'maintenance failed');
    else this.log.info({ task, ...run.result }, 'maintenance done');
    return run;
  }

  private perform(task: MaintenanceTask): Promise<Record<string, unknown>> {
    if (task === 'forget_prune') return this.forgetPrune();
    if (task === 'check') return this.check();
    return syncUpstreams(this.repo, this.config.maintenance!.sync!, this.clock, this.log);
  }

  /** Sources with a retention in the config are forgotten by it; the others are left alone. Then prune. */
  private async forgetPrune(): Promise<Record<string, unknown>> {
    const sources = [...new Set(this.repo.snapshots().map((s) => s.source))];
    let removed = 0;
    const forgotten: string[] = [];
    for (const source of sources) {
      if (!matchPolicy(this.config, source)?.retention) continue;
      const policy = policyFor(this.config, source, this.repo.snapshots({ source })).retention;
      if (!policy) continue;
      const r = await forgetSnapshots(this.repo, { source, policy }, this.clock);
      await audit(this.repo).record('forget', KEEPD, { ...forgetFields(r), scheduled: true });
      removed += r.groups.reduce((n, g) => n + g.removed.length, 0);
      forgotten.push(source);
    }
    const p = await prune(this.repo);
    await audit(this.repo).record('prune', KEEPD, { ...pruneFields(p), scheduled: true });
    return { sources: forgotten, snapshots_removed: removed, blobs_removed: p.blobs_removed, bytes_freed: p.bytes_before - p.bytes_after };
  }

  private async check(): Promise<Record<string, unknown>> {
    const r = await this.repo.check({ readDataSubset: this.config.maintenance?.check?.read_data_subset });
    if (!r.ok) throw new Error(`check found ${r.errors.length} problem(s): ${r.errors[0]}`);
    return { snapshots: r.snapshots, packs: r.packs, blobs_read: r.blobs_read };
  }
}
