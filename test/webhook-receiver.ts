/**
 * A real HTTP webhook receiver in the test process (alerts, replica lag,
 * storage alerts): answers 200, or 503 while `failing` (or for `failingKeys`), or never while `hanging`; records every
 * request with its Idempotency-Key. Plus `until`, polling a condition.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Received {
  path: string;
  key: string;
  auth?: string;
  body: any;
  status: number;
  /** when the request arrived (Date.now()) */
  at: number;
}

export class Receiver {
  readonly seen: Received[] = [];
  /** requests left unanswered while hanging: when each arrived and when keepd gave up on it (its connection closed) */
  readonly hung: { at: number; closedAt?: number }[] = [];
  failing = false;
  /** Idempotency-Keys answered 503 (as `failing`, for one transition: set before it can happen, so no race with it) */
  readonly failingKeys = new Set<string>();
  hanging = false;
  private server?: http.Server;
  port = 0;

  async listen(port = 0): Promise<void> {
    this.server = http.createServer((req, res) => {
      const at = Date.now();
      if (this.hanging) {
        const h: { at: number; closedAt?: number } = { at };
        this.hung.push(h);
        res.on('close', () => (h.closedAt = Date.now()));
        return;
      }
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        const key = String(req.headers['idempotency-key']);
        const status = this.failing || this.failingKeys.has(key) ? 503 : 200;
        this.seen.push({ path: req.url ?? '', key, auth: req.headers.authorization, body: JSON.parse(body), status, at });
        res.writeHead(status).end();
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(port, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
  }

  async close(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise((r) => this.server?.close(r));
  }

  /** Requests accepted (2xx) for a path and key. */
  accepted(p: string, key: string): Received[] {
    return this.seen.filter((r) => r.path === p && r.key === key && r.status === 200);
  }
}

/** Poll `f` until it gives something truthy; throws naming `what` after `timeoutMs`. */
export async function until<T>(what: string, f: () => T | Promise<T>, timeoutMs = 60_000): Promise<T> {
  const start = Date.now();
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 150));
  }
}
