import fs from 'node:fs';
import { Database, Repository, STATE_TABLES } from '@keep/core';
import type { Logger } from '../log.js';
import { AlertEvent, idempotencyKey, PAYLOADS } from './alert-payloads.js';
import type { ReceiverInput } from './config-schema.js';

/** One event for one receiver, kept in state.mdb until delivered (and a while after, for `keepd alerts`). */
export interface OutboxEntry {
  receiver: string;
  event: AlertEvent;
  attempts: number;
  /** keepd time of the next attempt */
  next_ms: number;
  delivered_ms?: number;
  last_error?: string;
  /** HTTP status of the last attempt */
  last_status?: number;
}

export const DEFAULT_RETRY_INITIAL_MS = 1000;
export const DEFAULT_RETRY_MAX_MS = 5 * 60_000;
const DELIVERY_TIMEOUT_MS = 10_000;
/** delivered entries kept for `keepd alerts` */
const DELIVERED_KEPT = 1000;
const pad = (n: number) => String(n).padStart(15, '0');

export const outboxKey = (e: AlertEvent, receiver: string) => `${pad(e.at_ms)}\0${e.id}\0${pad(e.seq)}\0${receiver}`;

export function outboxTable(repo: Repository): Database<OutboxEntry, string> {
  return repo.database<OutboxEntry>(STATE_TABLES.alertOutbox);
}

/** Header lines "Name: value" from a receiver's headers_file (read at each delivery: a rotated secret needs no restart). */
export function readHeaders(file: string | undefined): Record<string, string> {
  if (!file) return {};
  const out: Record<string, string> = {};
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    const m = /^\s*([A-Za-z0-9-]+)\s*:\s*(.*?)\s*$/.exec(line);
    if (m) out[m[1]] = m[2];
  }
  return out;
}

/** Alertmanager's endpoint under a base URL (a URL already naming it is kept). */
export function endpointOf(r: ReceiverInput): string {
  if (r.type !== 'alertmanager' || /\/api\/v2\/alerts\/?$/.test(r.url)) return r.url;
  return r.url.replace(/\/+$/, '') + '/api/v2/alerts';
}

/**
 * Delivers the outbox: each pending entry whose time has come is POSTed;
 * a 2xx marks it delivered, anything else (status, refused, timeout) waits
 * retry_initial x 2^attempts, at most retry_max, and tries again — across
 * restarts, since the entry lives in state.mdb. Each receiver has its own
 * delivery run, oldest entry first, and the runs go on concurrently and
 * outside the alerts' serial chain, so a slow or dead receiver delays only
 * itself; one run per receiver at a time means an entry is never POSTed
 * twice at once. The Idempotency-Key lets a receiver drop the copy it may
 * see when keepd stopped after the POST but before recording the 2xx.
 */
export class OutboxDelivery {
  private readonly table: Database<OutboxEntry, string>;
  /** the delivery run in progress per receiver name */
  private readonly running = new Map<string, Promise<void>>();
  /** aborts the POSTs in flight when keepd stops (their entries stay pending) */
  private readonly stopping = new AbortController();

  constructor(
    repo: Repository,
    private readonly receivers: ReceiverInput[],
    private readonly retry: { initialMs: number; maxMs: number },
    private readonly log: Logger,
  ) {
    this.table = outboxTable(repo);
  }

  /** Queue `event` for every receiver; called inside the caller's transaction. */
  queue(event: AlertEvent): void {
    for (const r of this.receivers) void this.table.put(outboxKey(event, r.name), { receiver: r.name, event, attempts: 0, next_ms: event.at_ms });
  }

  /** Start a delivery run for each receiver with entries due at `now` and none running; returns without waiting for them. */
  async deliverDue(now: number): Promise<void> {
    if (this.stopping.signal.aborted) return;
    for (const r of this.receivers) {
      if (this.running.has(r.name) || !this.due(r.name, now).length) continue;
      const run = this.deliverTo(r, now)
        .catch((e) => this.log.error({ receiver: r.name, err: (e as Error).message }, 'alert delivery failed'))
        .finally(() => this.running.delete(r.name));
      this.running.set(r.name, run);
    }
    await this.trim();
  }

  /** Abort the POSTs in flight and wait for every run to end. */
  async stop(): Promise<void> {
    this.stopping.abort();
    await Promise.all(this.running.values());
  }

  private due(receiver: string, now: number): { key: string; value: OutboxEntry }[] {
    return [...this.table.getRange()].filter(({ value }) => value.receiver === receiver && value.delivered_ms === undefined && value.next_ms <= now);
  }

  /** One receiver's due entries, oldest first. */
  private async deliverTo(r: ReceiverInput, now: number): Promise<void> {
    for (const { key, value } of this.due(r.name, now)) {
      const attempt = await this.post(r, value.event);
      if (this.stopping.signal.aborted) return; // not recorded: tried again (same key) after the restart
      const attempts = value.attempts + 1;
      if (attempt.ok) await this.table.put(key, { ...value, attempts, delivered_ms: now, last_status: attempt.status, last_error: undefined });
      else {
        const wait = Math.min(this.retry.maxMs, this.retry.initialMs * 2 ** (attempts - 1));
        await this.table.put(key, { ...value, attempts, next_ms: now + wait, last_status: attempt.status, last_error: attempt.error });
        this.log.warn({ receiver: r.name, alert: value.event.id, attempts, retry_in_ms: wait, err: attempt.error }, 'alert delivery failed');
      }
    }
  }

  private async post(r: ReceiverInput, e: AlertEvent): Promise<{ ok: boolean; status?: number; error?: string }> {
    try {
      const res = await fetch(endpointOf(r), {
        method: 'POST',
        headers: { ...readHeaders(r.headers_file), 'content-type': 'application/json', 'idempotency-key': idempotencyKey(e) },
        body: JSON.stringify(PAYLOADS[r.type](e)),
        signal: AbortSignal.any([AbortSignal.timeout(DELIVERY_TIMEOUT_MS), this.stopping.signal]),
      });
      await res.arrayBuffer().catch(() => undefined);
      return res.ok ? { ok: true, status: res.status } : { ok: false, status: res.status, error: `HTTP ${res.status}` };
    } catch (err) {
      const e2 = err as Error & { cause?: { code?: string } };
      return { ok: false, error: e2.cause?.code ?? e2.message };
    }
  }

  private async trim(): Promise<void> {
    const delivered = [...this.table.getRange()].filter((x) => x.value.delivered_ms !== undefined);
    for (const { key } of delivered.slice(0, Math.max(0, delivered.length - DELIVERED_KEPT))) await this.table.remove(key);
  }
}
