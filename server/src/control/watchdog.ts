import { EventEmitter } from 'node:events';
import { Clock, recordedTime, Repository, Snapshot, spaceOf } from '@keep/core';
import { replicaLags } from './replica-lag.js';
import type { Logger } from '../log.js';
import type { ReplicaRegistry } from '../replicas.js';
import type { DrillStore } from '../drills.js';
import type { RunReportStore } from '../run-reports.js';
import type { StorageSpace } from '../storage-space.js';
import { DEFAULT_WATCH_INTERVAL_MS, KeepdConfig } from './config.js';
import { Condition, drillCondition, maintenanceCondition, replicaCondition, sourceCondition, storageCondition } from './evaluate.js';
import { drillView, DrillView } from './drill-view.js';
import { MAINTENANCE_TASKS } from './maintenance.js';
import { policyFor, SourcePolicy } from './policies.js';
import { HeldState, Transition, WatchStore } from './watch-store.js';

export const DEFAULT_HYSTERESIS = 2;
export const DEFAULT_FAILURE_WINDOW_MS = 24 * 3600_000;

export interface WatchdogDeps {
  repo: Repository;
  runs: RunReportStore;
  drills: DrillStore;
  replicas: ReplicaRegistry;
  space: StorageSpace;
  data: string;
  config: KeepdConfig;
  clock: Clock;
  log: Logger;
  store: WatchStore;
}

/**
 * keepd's watchdog: every `watchdog.interval` (default 5 s, keepd's clock)
 * it judges sources, replicas, storage and maintenance from stored facts,
 * and holds each condition's state with hysteresis: a new state is taken
 * only after the same candidate came out of `watchdog.hysteresis`
 * consecutive evaluations (default 2); a condition seen for the first time
 * is taken at once. Held states and every transition are written to
 * state.mdb, so a restart resumes them (no repeated transitions) and
 * `keepd status` reads them from another process. Emits 'transition'
 * (Transition) for whatever raises alerts.
 */
export class Watchdog extends EventEmitter {
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  readonly intervalMs: number;
  private readonly hysteresis: number;

  constructor(private readonly d: WatchdogDeps) {
    super();
    this.intervalMs = d.config.watchdog?.interval ?? DEFAULT_WATCH_INTERVAL_MS;
    this.hysteresis = d.config.watchdog?.hysteresis ?? DEFAULT_HYSTERESIS;
  }

  start(): void {
    void this.tick();
    this.timer = setInterval(() => void this.tick(), this.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }

  /** The states held now. */
  states(): HeldState[] {
    return this.d.store.held();
  }

  private tick(): Promise<void> {
    if (this.running) return this.running; // an evaluation slower than the interval is not stacked
    this.running = this.evaluate()
      .catch((e) => this.d.log.error({ err: (e as Error).message }, 'watchdog evaluation failed'))
      .finally(() => (this.running = undefined));
    return this.running;
  }

  /** Each source's policy (config, tier, or observed interval). */
  policies(): SourcePolicy[] {
    const bySource = new Map<string, Snapshot[]>();
    for (const s of this.d.repo.snapshots()) bySource.set(s.source, [...(bySource.get(s.source) ?? []), s]);
    for (const r of this.d.runs.list()) if (!bySource.has(r.source)) bySource.set(r.source, []);
    for (const source of this.d.drills.sources()) if (!bySource.has(source)) bySource.set(source, []);
    return [...bySource].map(([source, snaps]) => policyFor(this.d.config, source, snaps));
  }

  /** Each source's drill figures (drill-view.ts), from its drill events and snapshots. */
  drillViews(): DrillView[] {
    return this.policies().map((p) => drillView(p, this.d.drills.history(p.source), this.d.repo.snapshots({ source: p.source })));
  }

  /** What holds now, before hysteresis. */
  async conditions(now: number): Promise<Condition[]> {
    const { repo, runs, config } = this.d;
    const windowMs = config.watchdog?.failure_window ?? DEFAULT_FAILURE_WINDOW_MS;
    const summaries = new Map(runs.list().map((r) => [r.source, r]));
    const out: Condition[] = [];
    const policies = this.policies();
    for (const p of policies) {
      const snaps = repo.snapshots({ source: p.source });
      const last = snaps.length ? Math.max(...snaps.map(recordedTime)) : undefined;
      const recent = runs.recent(p.source).filter((r) => r.received_ms >= now - windowMs);
      const failed = recent.filter((r) => r.result === 'failure').length;
      out.push(
        sourceCondition({
          source: p.source,
          ageMs: last === undefined ? undefined : now - last,
          rpoMs: p.rpoMs,
          origin: p.origin,
          consecutiveFailures: summaries.get(p.source)?.consecutive_failures ?? 0,
          failureRate: recent.length ? failed / recent.length : null,
          failuresThreshold: config.watchdog?.failures ?? 1,
        }),
      );
    }
    // drills are judged where they are asked for (policy) or ran; other sources carry no drill condition
    for (const v of this.drillViews().filter((x) => x.configured || x.drills > 0)) {
      const snaps = repo.snapshots({ source: v.source });
      out.push(drillCondition(v, now, snaps.length ? Math.min(...snaps.map(recordedTime)) : undefined));
    }
    const strictest = Math.min(...policies.map((p) => p.rpoMs ?? Infinity));
    for (const r of replicaLags(repo, this.d.replicas, now)) out.push(replicaCondition(r.replica_id, r.lag_ms, Number.isFinite(strictest) ? strictest : undefined));
    const { free, total } = spaceOf(this.d.data);
    const rate = await this.d.store.sampleUsage(now, total - free);
    out.push(storageCondition({ free, reserve: this.d.space.reserveOf(total), bytesPerMs: rate, warnDays: config.watchdog?.storage_warn_days ?? 7 }));
    for (const task of MAINTENANCE_TASKS) if (config.maintenance?.[task]) out.push(maintenanceCondition(task, this.d.store.lastRun(task)));
    return out;
  }

  /** One evaluation: conditions, hysteresis, transitions stored then emitted. */
  async evaluate(): Promise<void> {
    const now = this.d.clock.now();
    const seen = await this.conditions(now);
    const held = new Map(this.d.store.held().map((h) => [`${h.kind}\0${h.name}`, h]));
    const next: HeldState[] = [];
    const transitions: Transition[] = [];
    for (const c of seen) {
      const key = `${c.kind}\0${c.name}`;
      const h = held.get(key);
      held.delete(key);
      if (!h) {
        next.push({ ...c, since_ms: now, candidate_count: 0, evaluated_ms: now });
        transitions.push({ at_ms: now, kind: c.kind, name: c.name, from: null, to: c.state, severity: c.severity, detail: c.detail });
      } else if (c.state === h.state) {
        next.push({ ...c, since_ms: h.since_ms, candidate_count: 0, evaluated_ms: now });
      } else {
        const count = h.candidate === c.state ? h.candidate_count + 1 : 1;
        if (count >= this.hysteresis) {
          next.push({ ...c, since_ms: now, candidate_count: 0, evaluated_ms: now });
          transitions.push({ at_ms: now, kind: c.kind, name: c.name, from: h.state, to: c.state, severity: c.severity, detail: c.detail });
        } else next.push({ ...h, detail: c.detail, candidate: c.state, candidate_count: count, evaluated_ms: now });
      }
    }
    await this.d.store.save(next, [...held.keys()], transitions, { evaluated_ms: now, interval_ms: this.intervalMs, pid: process.pid });
    for (const t of transitions) {
      if (t.from !== null) this.d.log.info({ kind: t.kind, name: t.name, from: t.from, to: t.to }, 'watchdog transition');
      this.emit('transition', t);
    }
  }
}
