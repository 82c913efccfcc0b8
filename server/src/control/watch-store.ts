import { Database, Repository, STATE_TABLES } from '@keep/core';
import type { Condition } from './evaluate.js';


export interface HeldState extends Condition {
  since_ms: number;
  /** a different state seen `candidate_count` evaluations running, not yet taken */
  candidate?: string;
  candidate_count: number;
  evaluated_ms: number;
}

export interface Transition {
  at_ms: number;
  kind: Condition['kind'];
  name: string;
  from: string | null;
  to: string;
  severity: Condition['severity'];
  detail: Condition['detail'];
}

export interface WatchMeta {
  evaluated_ms: number;
  interval_ms: number;
  pid: number;
}

export interface MaintenanceRun {
  task: string;
  start_ms: number;
  end_ms: number;
  outcome: 'success' | 'failure';
  error?: string;
  result?: Record<string, unknown>;
}

export interface UsageSample {
  at_ms: number;
  /** bytes used on the data directory's file system */
  used: number;
}

/**
 * Growth of bytes used, bytes/ms: from the oldest sample kept to `used` at
 * `now`; 0 before MIN_GROWTH_SPAN_MS of samples. The one computation behind
 * days to full (watchdog), keep_storage_days_to_full and the dashboard's trend.
 */
export function growthRate(samples: readonly UsageSample[], now: number, used: number): number {
  const first = samples[0];
  if (!first || now - first.at_ms < MIN_GROWTH_SPAN_MS) return 0;
  return (used - first.used) / (now - first.at_ms);
}

const TRANSITIONS_KEPT = 10_000;
const USAGE_KEPT_MS = 7 * 86_400_000;
/** Growth is judged over at least this span: over seconds, another writer on the disk is noise, not a trend. */
export const MIN_GROWTH_SPAN_MS = 3600_000;
const pad = (ms: number) => String(ms).padStart(15, '0');

/** The watchdog's and maintenance's records in state.mdb, so a restart resumes them. */
export class WatchStore {
  readonly states: Database<HeldState, string>;
  readonly transitions: Database<Transition, string>;
  readonly meta: Database<WatchMeta, string>;
  readonly usage: Database<number, string>;
  readonly runs: Database<MaintenanceRun, string>;

  constructor(repo: Repository) {
    this.states = repo.database<HeldState>(STATE_TABLES.watchdogStates);
    this.transitions = repo.database<Transition>(STATE_TABLES.watchdogTransitions);
    this.meta = repo.database<WatchMeta>(STATE_TABLES.watchdogMeta);
    this.usage = repo.database<number>(STATE_TABLES.storageUsage);
    this.runs = repo.database<MaintenanceRun>(STATE_TABLES.maintenanceRuns);
  }

  held(): HeldState[] {
    return [...this.states.getRange()].map(({ value }) => value);
  }

  lastEvaluation(): WatchMeta | undefined {
    return this.meta.get('last');
  }

  /** The new held states, their transitions and the evaluation time in one transaction. */
  async save(states: HeldState[], gone: string[], transitions: Transition[], meta: WatchMeta): Promise<void> {
    await this.states.transaction(() => {
      for (const s of states) void this.states.put(`${s.kind}\0${s.name}`, s);
      for (const k of gone) void this.states.remove(k);
      for (const t of transitions) void this.transitions.put(`${pad(t.at_ms)}\0${t.kind}\0${t.name}`, t);
      void this.meta.put('last', meta);
    });
    const extra = this.transitions.getCount() - TRANSITIONS_KEPT;
    if (extra > 0) for (const key of [...this.transitions.getKeys({ limit: extra })]) await this.transitions.remove(key);
  }

  recentTransitions(limit = 100): Transition[] {
    return [...this.transitions.getRange({ reverse: true, limit })].map(({ value }) => value);
  }

  /** Record bytes used at most once a minute; samples older than a week dropped. Resolves with the growth rate (growthRate) over the samples kept. */
  async sampleUsage(now: number, used: number): Promise<number> {
    const [newest] = [...this.usage.getRange({ reverse: true, limit: 1 })];
    if (!newest || now - Number(newest.key) >= 60_000) await this.usage.put(pad(now), used);
    for (const key of [...this.usage.getKeys({ end: pad(now - USAGE_KEPT_MS) })]) await this.usage.remove(key);
    return growthRate(this.usageSamples(), now, used);
  }

  /** The usage samples kept (a week at most), oldest first: what growth, days to full, the report and the dashboard's chart come from. */
  usageSamples(): UsageSample[] {
    return [...this.usage.getRange()].map(({ key, value }) => ({ at_ms: Number(key), used: value }));
  }

  async recordRun(r: MaintenanceRun): Promise<void> {
    await this.runs.put(`${r.task}\0${pad(r.start_ms)}`, r);
  }

  lastRun(task: string): MaintenanceRun | undefined {
    const [r] = [...this.runs.getRange({ start: `${task}\0\uffff`, end: `${task}\0`, reverse: true, limit: 1 })];
    return r?.value;
  }

  allRuns(): MaintenanceRun[] {
    return [...this.runs.getRange()].map(({ value }) => value);
  }
}
