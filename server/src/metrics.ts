import http from 'node:http';
import type { Repository } from '@keep/core';
import { listenError, splitHostPort } from './net/host-port.js';
import type { SessionManager } from './sessions.js';

type Labels = Record<string, string>;

/** One labelled value of a family read at scrape time. */
export interface Sample {
  labels: Labels;
  value: number;
}

function labelText(labels: Labels): string {
  return Object.entries(labels)
    .map(([k, v]) => `${k}="${v.replace(/["\\\n]/g, '_')}"`)
    .join(',');
}

/** Prometheus numbers: Infinity as +Inf. */
function num(v: number): string {
  return v === Infinity ? '+Inf' : v === -Infinity ? '-Inf' : String(v);
}

/** Prometheus text exposition of a few counters and gauges; no dependency needed for this much. */
export class Metrics {
  private readonly counters = new Map<string, { help: string; values: Map<string, number> }>();
  private readonly gauges = new Map<string, { help: string; read: () => number }>();
  private readonly families = new Map<string, { help: string; type: 'counter' | 'gauge'; read: () => Sample[] }>();

  counter(name: string, help: string): (labels?: Labels, by?: number) => void {
    const c = { help, values: new Map<string, number>() };
    this.counters.set(name, c);
    return (labels = {}, by = 1) => {
      const key = labelText(labels);
      c.values.set(key, (c.values.get(key) ?? 0) + by);
    };
  }

  gauge(name: string, help: string, read: () => number): void {
    this.gauges.set(name, { help, read });
  }

  /** A labelled family computed from stored state at each scrape (so a restart does not reset it). */
  family(name: string, help: string, type: 'counter' | 'gauge', read: () => Sample[]): void {
    this.families.set(name, { help, type, read });
  }

  render(): string {
    const lines: string[] = [];
    for (const [name, c] of this.counters) {
      lines.push(`# HELP ${name} ${c.help}`, `# TYPE ${name} counter`);
      for (const [k, v] of c.values) lines.push(`${name}${k ? `{${k}}` : ''} ${v}`);
    }
    for (const [name, g] of this.gauges) lines.push(`# HELP ${name} ${g.help}`, `# TYPE ${name} gauge`, `${name} ${num(g.read())}`);
    for (const [name, f] of this.families) {
      lines.push(`# HELP ${name} ${f.help}`, `# TYPE ${name} ${f.type}`);
      for (const x of f.read()) {
        const k = labelText(x.labels);
        lines.push(`${name}${k ? `{${k}}` : ''} ${num(x.value)}`);
      }
    }
    return lines.join('\n') + '\n';
  }

  /** Serve GET /metrics on host:port (loopback unless told otherwise). */
  listen(host: string, port: number): Promise<http.Server> {
    const server = http.createServer((req, res) => {
      if (req.url !== '/metrics') return void res.writeHead(404).end();
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(this.render());
    });
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve(server));
    });
  }
}

/** The server's instruments, named once. */
export function serverMetrics(m: Metrics) {
  return {
    rpc: m.counter('keep_rpc_requests_total', 'RPCs handled, by method and status code'),
    blobsStored: m.counter('keep_blobs_stored_total', 'Blobs written to packs'),
    bytesStored: m.counter('keep_bytes_stored_total', 'Stored bytes written to packs'),
    blobsDeduped: m.counter('keep_blobs_deduplicated_total', 'Uploaded blobs the repository already held'),
    uploadMessages: m.counter('keep_upload_messages_total', 'Upload messages taken: one blob each, or a batch of blobs (issue 21)'),
    bytesServed: m.counter('keep_bytes_served_total', 'Stored bytes sent to readers'),
    commits: m.counter('keep_snapshots_committed_total', 'Snapshots committed, by source'),
  };
}

/** A part of keepd that registers its own gauges (storage-space.ts). */
export interface MetricsSource {
  register(m: Metrics): void;
}

/** keepd's gauges of what it holds: open sessions, snapshots, blobs, the data directory's free space. */
export function registerHoldings(m: Metrics, o: { sessions: SessionManager; repo: Repository; space: MetricsSource }): void {
  m.gauge('keep_sessions_open', 'Writer sessions open', () => o.sessions.count);
  m.gauge('keep_snapshots', 'Snapshots in the repository', () => o.repo.snapshots().length);
  m.gauge('keep_blobs', 'Blobs in the index', () => o.repo.blobCount());
  // where the packs are: the data directory, or the bucket of keepd init --store (whose size no local disk figure shows)
  m.gauge('keep_repository_stored_bytes', 'Bytes of the indexed packs the repository stores, in the data directory or in its bucket', () => o.repo.indexedPackBytes());
  o.space.register(m);
  // the object store's requests (keepd init --store): none for a data directory
  const ops = () => o.repo.storage.requestStats();
  m.family('keep_store_requests_total', 'Requests keepd made to its object store, per operation (retries included)', 'counter', () => ops().map((s) => ({ labels: { op: s.op }, value: s.requests })));
  m.family('keep_store_request_errors_total', 'Object store requests that failed, per operation', 'counter', () => ops().map((s) => ({ labels: { op: s.op }, value: s.errors })));
  m.family('keep_store_bytes_total', 'Bytes sent to (put) or received from (get) the object store', 'counter', () => ops().map((s) => ({ labels: { op: s.op }, value: s.bytes })));
  m.family('keep_store_request_seconds_total', 'Time spent waiting for the object store, per operation (divide by keep_store_requests_total for the mean latency)', 'counter', () => ops().map((s) => ({ labels: { op: s.op }, value: s.seconds })));
}

/** Prometheus /metrics on `hostPort` (--metrics HOST:PORT): the server and the port it took. */
export async function listenMetrics(m: Metrics, hostPort: string): Promise<{ server: http.Server; port: number }> {
  const mh = splitHostPort(hostPort, '--metrics');
  const server = await m.listen(mh.host, mh.port).catch((err: NodeJS.ErrnoException) => {
    throw listenError('--metrics', hostPort, err);
  });
  return { server, port: (server.address() as { port: number }).port };
}
