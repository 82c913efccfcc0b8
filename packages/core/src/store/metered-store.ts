import type { GetResult, ListOptions, ListPage, ObjectInfo, ObjectStore, PutOptions } from './object-store.js';

/** The operations a store is asked for, as /metrics labels them. */
export const STORE_OPS = ['put', 'get', 'head', 'list', 'delete'] as const;
export type StoreOp = (typeof STORE_OPS)[number];

/** What one operation cost since the process started (Prometheus counters: they reset with it). */
export interface StoreOpStats {
  op: StoreOp;
  requests: number;
  errors: number;
  /** bytes sent (put) or received (get) */
  bytes: number;
  /** time spent waiting for answers, summed */
  seconds: number;
}

/**
 * Counts every request a store makes, per operation: requests, errors,
 * bytes and time (keepd's /metrics: keep_store_*). Wrapped inside the
 * retries (retrying-store.ts), so each retry counts as a request.
 */
export class MeteredStore implements ObjectStore {
  readonly capabilities: ObjectStore['capabilities'];
  readonly description: string;
  private readonly counts = new Map<StoreOp, StoreOpStats>(STORE_OPS.map((op) => [op, { op, requests: 0, errors: 0, bytes: 0, seconds: 0 }]));

  constructor(
    private readonly inner: ObjectStore,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.capabilities = inner.capabilities;
    this.description = inner.description;
  }

  stats(): StoreOpStats[] {
    return [...this.counts.values()].map((s) => ({ ...s }));
  }

  private async measure<T>(op: StoreOp, run: () => Promise<T>, bytesOf: (r: T) => number): Promise<T> {
    const s = this.counts.get(op)!;
    const start = this.now();
    s.requests++;
    try {
      const r = await run();
      s.bytes += bytesOf(r);
      return r;
    } catch (e) {
      s.errors++;
      throw e;
    } finally {
      s.seconds += (this.now() - start) / 1000;
    }
  }

  put(key: string, bytes: Buffer, opts?: PutOptions): Promise<{ etag: string }> {
    return this.measure('put', () => this.inner.put(key, bytes, opts), () => bytes.length);
  }

  get(key: string, opts?: { range?: { offset: number; length: number } }): Promise<GetResult> {
    return this.measure('get', () => this.inner.get(key, opts), (r) => r.bytes.length);
  }

  head(key: string): Promise<ObjectInfo | undefined> {
    return this.measure('head', () => this.inner.head(key), () => 0);
  }

  list(prefix: string, opts?: ListOptions): Promise<ListPage> {
    return this.measure('list', () => this.inner.list(prefix, opts), () => 0);
  }

  deleteMany(keys: string[]): Promise<void> {
    return this.measure('delete', () => this.inner.deleteMany(keys), () => 0);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
