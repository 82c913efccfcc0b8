import { Clock, Database, Repository, STATE_TABLES } from '@keep/core';
import { audit } from '../audit/log.js';
import type { Logger } from '../log.js';
import type { AlertEvent } from './alert-payloads.js';
import type { KeepdConfig } from './config.js';
import { DEFAULT_RETRY_INITIAL_MS, DEFAULT_RETRY_MAX_MS, OutboxDelivery, OutboxEntry, outboxTable } from './outbox.js';
import type { Watchdog } from './watchdog.js';
import type { Transition, WatchStore } from './watch-store.js';

/** An alert as `keepd alerts` shows it: one per condition, its newest episode. */
export interface AlertRecord {
  id: string;
  kind: AlertEvent['kind'];
  subject: string;
  condition: string;
  severity: AlertEvent['severity'];
  state: 'firing' | 'resolved';
  started_ms: number;
  updated_ms: number;
  /** when an event of it was last queued (repeat_interval counts from here) */
  last_sent_ms: number;
  resolved_ms?: number;
  seq: number;
}


export const DEFAULT_REPEAT_INTERVAL_MS = 4 * 3600_000;
/** resolved alerts listed by `keepd alerts` for this long */
const RESOLVED_KEPT_MS = 7 * 86_400_000;

export function alertsTable(repo: Repository): Database<AlertRecord, string> {
  return repo.database<AlertRecord>(STATE_TABLES.alerts);
}

/**
 * Alerts from the watchdog's transitions. A transition into a non-ok state
 * (severity > 0) fires (or changes) its condition's alert; one back to
 * severity 0 resolves a firing alert; a firing alert is sent again every
 * repeat_interval. Each event is written to the outbox right after the
 * watchdog's transaction, in one transaction with the alert and a cursor
 * over the stored transitions: a keepd stopped in between finds the
 * transitions past the cursor at its next start and raises them then.
 */
export class Alerts {
  private readonly alerts: Database<AlertRecord, string>;
  private readonly meta: Database<string, string>;
  private readonly delivery: OutboxDelivery;
  private readonly repeatMs: number;
  private timer?: NodeJS.Timeout;
  private chain: Promise<void> = Promise.resolve();

  constructor(
    private readonly repo: Repository,
    config: KeepdConfig,
    private readonly store: WatchStore,
    private readonly clock: Clock,
    private readonly log: Logger,
  ) {
    this.alerts = alertsTable(repo);
    this.meta = repo.database<string>(STATE_TABLES.alertsMeta);
    const a = config.alerts;
    this.repeatMs = a?.repeat_interval ?? DEFAULT_REPEAT_INTERVAL_MS;
    this.delivery = new OutboxDelivery(repo, a?.receivers ?? [], { initialMs: a?.retry_initial ?? DEFAULT_RETRY_INITIAL_MS, maxMs: a?.retry_max ?? DEFAULT_RETRY_MAX_MS }, log);
  }

  /** Follow the watchdog; deliver and repeat every `tickMs`. A first start takes no alerts from transitions older than itself. */
  start(watchdog: Watchdog, tickMs: number): void {
    if (this.meta.get('cursor') === undefined) {
      const [newest] = [...this.store.transitions.getKeys({ reverse: true, limit: 1 })];
      this.meta.putSync('cursor', newest ?? ''); // before the watchdog's first evaluation
    }
    watchdog.on('transition', () => this.serially(() => this.catchUp()));
    void this.serially(() => this.catchUp());
    this.timer = setInterval(() => void this.serially(() => this.tick()), tickMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.chain;
    await this.delivery.stop();
  }

  private serially(step: () => Promise<void>): Promise<void> {
    this.chain = this.chain.then(step).catch((e) => this.log.error({ err: (e as Error).message }, 'alerts failed'));
    return this.chain;
  }

  /** Every stored transition past the cursor, in order. */
  private async catchUp(): Promise<void> {
    const cursor = this.meta.get('cursor') ?? '';
    for (const { key, value } of [...this.store.transitions.getRange({ start: cursor + '\0' })]) {
      if (key <= cursor) continue;
      await this.apply(value, key);
    }
  }

  private async apply(t: Transition, key: string): Promise<void> {
    const id = `${t.kind}/${t.name}`;
    const held = this.alerts.get(`${t.kind}\0${t.name}`);
    const firing = held?.state === 'firing';
    let event: AlertEvent | undefined;
    let next: AlertRecord | undefined;
    if (t.severity > 0) {
      const started = firing ? held.started_ms : t.at_ms;
      next = { id, kind: t.kind, subject: t.name, condition: t.to, severity: t.severity, state: 'firing', started_ms: started, updated_ms: t.at_ms, last_sent_ms: t.at_ms, seq: (held?.seq ?? 0) + 1 };
    } else if (firing) {
      next = { ...held, condition: t.to, severity: 0, state: 'resolved', updated_ms: t.at_ms, last_sent_ms: t.at_ms, resolved_ms: t.at_ms, seq: held.seq + 1 };
    }
    if (next) event = { id, seq: next.seq, kind: t.kind, subject: t.name, condition: t.to, severity: t.severity, state: next.state, repeat: false, at_ms: t.at_ms, started_ms: next.started_ms, from: t.from, detail: t.detail };
    await this.commit(next, event, key);
    if (event) {
      await audit(this.repo).event('alert', { alert: id, kind: t.kind, source: t.kind === 'source' ? t.name : undefined, subject: t.name, state: event.state, condition: t.to, from: t.from ?? undefined, severity: t.severity, seq: event.seq });
      this.log.info({ alert: id, state: event.state, condition: t.to, seq: event.seq }, 'alert');
    }
  }

  /** The alert, its outbox entries and the cursor, one transaction. */
  private commit(next: AlertRecord | undefined, event: AlertEvent | undefined, cursor?: string): Promise<unknown> {
    return this.alerts.transaction(() => {
      if (next) void this.alerts.put(`${next.kind}\0${next.subject}`, next);
      if (event) this.delivery.queue(event);
      if (cursor !== undefined) void this.meta.put('cursor', cursor);
    });
  }

  private async tick(): Promise<void> {
    const now = this.clock.now();
    for (const { key, value: a } of [...this.alerts.getRange()]) {
      if (a.state === 'resolved' && now - (a.resolved_ms ?? 0) > RESOLVED_KEPT_MS) await this.alerts.remove(key);
      if (a.state !== 'firing' || now - a.last_sent_ms < this.repeatMs) continue;
      const next = { ...a, last_sent_ms: now, seq: a.seq + 1 };
      await this.commit(next, { id: a.id, seq: next.seq, kind: a.kind, subject: a.subject, condition: a.condition, severity: a.severity, state: 'firing', repeat: true, at_ms: now, started_ms: a.started_ms, from: a.condition, detail: this.store.states.get(key)?.detail ?? {} });
    }
    await this.delivery.deliverDue(now);
  }
}

/** What `keepd alerts` prints: active and recently resolved alerts, each with its outbox entries. */
export function alertsReport(repo: Repository) {
  const outbox = [...outboxTable(repo).getRange()].map(({ value }) => value);
  const deliveries = (a: AlertRecord) =>
    outbox
      .filter((o: OutboxEntry) => o.event.id === a.id && o.event.at_ms >= a.started_ms)
      .map((o) => ({
        receiver: o.receiver,
        idempotency_key: `${o.event.id}:${o.event.seq}`,
        state: o.event.state,
        condition: o.event.condition,
        delivery: o.delivered_ms !== undefined ? 'delivered' : 'pending',
        attempts: o.attempts,
        delivered: o.delivered_ms === undefined ? null : new Date(o.delivered_ms).toISOString(),
        next_attempt: o.delivered_ms === undefined ? new Date(o.next_ms).toISOString() : null,
        last_error: o.last_error ?? null,
      }));
  const shown = (a: AlertRecord) => ({
    id: a.id,
    kind: a.kind,
    subject: a.subject,
    condition: a.condition,
    severity: a.severity,
    state: a.state,
    started: new Date(a.started_ms).toISOString(),
    resolved: a.resolved_ms === undefined ? null : new Date(a.resolved_ms).toISOString(),
    seq: a.seq,
    deliveries: deliveries(a),
  });
  const all = [...alertsTable(repo).getRange()].map(({ value }) => value).sort((x, y) => y.updated_ms - x.updated_ms);
  return {
    active: all.filter((a) => a.state === 'firing').map(shown),
    recent: all.filter((a) => a.state === 'resolved').map(shown),
    pending_deliveries: outbox.filter((o) => o.delivered_ms === undefined).length,
  };
}
