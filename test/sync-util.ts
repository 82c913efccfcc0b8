/**
 * Helpers for the replication tests (test/sync-*.test.ts): keepd serve with
 * any flags (--upstream, --sync-replicas, ...), one-shot `keepd sync`,
 * `keepd status`, Prometheus scrapes, and snapshot lists read the way a user
 * would. Real processes only; nothing here imports core, agent or server.
 */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { Keepd, KEEPD_BIN, keepdJson, keepJson, killAllKeepd, runKeepd, Running, start, startKeepd } from './keepd-harness.js';

/** SIGKILL every keepd still running (afterAll). */
export const killAllServing = killAllKeepd;

/**
 * `keepd serve --data DIR --listen 127.0.0.1:0 --metrics 127.0.0.1:0 ARGS...`
 * (a replica: --upstream URL --sync-interval S with KEEP_UPSTREAM_TOKEN in
 * env; a primary: --sync-replicas N --sync-timeout S). Resolves once keepd
 * logs "listening".
 */
export function serveWith(data: string, args: string[] = [], env: Record<string, string | undefined> = {}): Promise<Keepd> {
  return startKeepd(data, { metrics: true, args, env });
}

/** Fail with the process's own log when a keepd died under the test. */
export function alive(k: Keepd, name: string): void {
  const x = k.exited();
  if (x) throw new Error(`${name} exited (${x.code ?? x.signal}):\n${k.output().slice(-4000)}`);
}

/** What `keepd sync --json` reports. */
export type { SyncReport } from '@keep/server';
import type { SyncReport } from '@keep/server';

function syncArgs(data: string, from: string, source?: string): string[] {
  return ['sync', '--data', data, '--from', from, ...(source ? ['--source', source] : []), '--json'];
}

/** `KEEP_TOKEN=token keepd sync --data DATA --from URL [--source S] --json`: the exit, stderr and the parsed report (when stdout holds one). */
export async function syncOnce(data: string, from: string, token: string, source?: string): Promise<{ code: number | null; stderr: string; stdout: string; report?: SyncReport }> {
  const r = await runKeepd(syncArgs(data, from, source), { env: { KEEP_TOKEN: token }, timeoutMs: 60_000 });
  let report: SyncReport | undefined;
  try {
    report = JSON.parse(r.stdout);
  } catch {
    report = undefined;
  }
  return { code: r.code, stderr: r.stderr, stdout: r.stdout, report };
}

/** The same, but it must succeed. */
export async function syncOk(data: string, from: string, token: string, source?: string): Promise<SyncReport> {
  const r = await syncOnce(data, from, token, source);
  if (r.code !== 0 || !r.report) throw new Error(`keepd sync exited ${r.code}\nstderr: ${r.stderr}\nstdout: ${r.stdout.slice(0, 2000)}`);
  return r.report;
}

/** Start `keepd sync` and hand back the child (to kill it mid-way). */
export function startSync(data: string, from: string, token: string, source?: string): Running {
  return start(KEEPD_BIN, syncArgs(data, from, source), { env: { KEEP_TOKEN: token }, timeoutMs: 60_000 });
}

/** `keepd status --data DIR --json`. */
export function status(data: string): Promise<any> {
  return keepdJson(['status', '--data', data]);
}

/** Snapshot ids (oldest first) as an agent sees them in a local (embedded) repository directory. */
export async function localSnapshotIds(data: string, password: string): Promise<string[]> {
  const list = await keepJson(['snapshots'], { KEEP_REPO: data, KEEP_PASSWORD: password });
  return list.map((s: { id: string }) => s.id);
}

/** Snapshot ids a keepd data directory holds, from its snapshot records (no key needed, keepd may be running). */
export function snapshotFiles(data: string): string[] {
  const dir = path.join(data, 'snapshots');
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .filter((n) => n.endsWith('.json'))
    .map((n) => n.slice(0, -'.json'.length))
    .sort();
}

/** Pack file names under DATA/packs/xx/ (a sync's progress on disk). */
export function packNames(data: string): string[] {
  const dir = path.join(data, 'packs');
  if (!fs.existsSync(dir)) return [];
  const out: string[] = [];
  for (const sub of fs.readdirSync(dir)) {
    let names: string[];
    try {
      names = fs.readdirSync(path.join(dir, sub));
    } catch {
      continue;
    }
    for (const n of names) if (n.endsWith('.pack')) out.push(`${sub}/${n}`);
  }
  return out.sort();
}

/** GET http://127.0.0.1:PORT/metrics. */
export function scrape(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: '/metrics', timeout: 5000 }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve(Buffer.concat(chunks).toString()));
        res.on('error', reject);
      })
      .on('error', reject);
  });
}

/** The value of an unlabelled (or first labelled) sample of `name` in a Prometheus text page. */
export function metricValue(page: string, name: string): number | undefined {
  for (const line of page.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (m && m[1] === name) return Number(m[3]);
  }
  return undefined;
}

/** Poll an async predicate until it holds; throws with the last observation after `timeoutMs`. */
export async function eventually<T>(probe: () => Promise<T>, ok: (v: T) => boolean, timeoutMs: number, everyMs = 100): Promise<{ value: T; ms: number }> {
  const t0 = Date.now();
  let last: T | undefined;
  for (;;) {
    last = await probe();
    if (ok(last)) return { value: last, ms: Date.now() - t0 };
    if (Date.now() - t0 > timeoutMs) throw new Error(`not reached within ${timeoutMs} ms; last: ${JSON.stringify(last).slice(0, 1500)}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
