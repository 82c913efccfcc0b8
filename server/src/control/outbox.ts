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
 * restarts, since the entry lives in state.mdb. Entries are delivered one at
 * a time, oldest first; the Idempotency-Key lets a receiver drop the copy
 * it may see when keepd stopped after the POST but before recording the 2xx.
 */
export class OutboxDelivery {
  private readonly table: Database<OutboxEntry, string>;

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

  /** One pass over the entries due at `now`. */
  async deliverDue(now: number): Promise<void> {
    const byName = new Map(this.receivers.map((r) => [r.name, r]));
    for (const { key, value } of [...this.table.getRange()]) {
      if (value.delivered_ms !== undefined || value.next_ms > now) continue;
      const r = byName.get(value.receiver);
      if (!r) continue; // a receiver removed from keepd.yaml: kept, shown by keepd alerts, never sent
      const attempt = await this.post(r, value.event);
      const attempts = value.attempts + 1;
      if (attempt.ok) await this.table.put(key, { ...value, attempts, delivered_ms: now, last_status: attempt.status, last_error: undefined });
      else {
        const wait = Math.min(this.retry.maxMs, this.retry.initialMs * 2 ** (attempts - 1));
        await this.table.put(key, { ...value, attempts, next_ms: now + wait, last_status: attempt.status, last_error: attempt.error });
        this.log.warn({ receiver: r.name, alert: value.event.id, attempts, retry_in_ms: wait, err: attempt.error }, 'alert delivery failed');
      }
    }
    await this.trim();
  }

  private async post(r: ReceiverInput, e: AlertEvent): Promise<{ ok: boolean; status?: number; error?: string }> {
    try {
      const res = await fetch(endpointOf(r), {
        method: 'POST',
        headers: { ...readHeaders(r.headers_file), 'content-type': 'application/json', 'idempotency-key': idempotencyKey(e) },
        body: JSON.stringify(PAYLOADS[r.type](e)),
        signal: AbortSignal.timeout(DELIVERY_TIMEOUT_MS),
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
