/**
 * A fault-injecting ObjectStore for tests: wraps a real store and makes
 * chosen calls fail the way S3 does under load (503 SlowDown), before or
 * after the real call (a reply lost after the write landed).
 */
import { type GetResult, type ListOptions, type ListPage, type ObjectInfo, type ObjectStore, type PutOptions, StoreError } from '@keep/core/store';

type Op = 'put' | 'get' | 'head' | 'list' | 'deleteMany';

export class FaultyStore implements ObjectStore {
  readonly capabilities: ObjectStore['capabilities'];
  readonly description: string;
  /** calls that reached the wrapper, per operation */
  readonly calls: Record<Op, number> = { put: 0, get: 0, head: 0, list: 0, deleteMany: 0 };
  private faults: { op: Op; times: number; after: boolean }[] = [];

  constructor(private readonly inner: ObjectStore) {
    this.capabilities = inner.capabilities;
    this.description = `faulty ${inner.description}`;
  }

  /** The next `times` calls of `op` fail with 503 SlowDown; `after`: the real call runs first (its reply is lost). */
  slowDown(op: Op, times: number, after = false): void {
    this.faults.push({ op, times, after });
  }

  private async call<T>(op: Op, real: () => Promise<T>): Promise<T> {
    this.calls[op]++;
    const f = this.faults.find((x) => x.op === op && x.times > 0);
    if (!f) return real();
    f.times--;
    if (f.after) await real();
    throw new StoreError('transient', `${op}: SlowDown (HTTP 503): Please reduce your request rate (injected)`);
  }

  put(key: string, bytes: Buffer, opts?: PutOptions): Promise<{ etag: string }> {
    return this.call('put', () => this.inner.put(key, bytes, opts));
  }
  get(key: string, opts?: { range?: { offset: number; length: number } }): Promise<GetResult> {
    return this.call('get', () => this.inner.get(key, opts));
  }
  head(key: string): Promise<ObjectInfo | undefined> {
    return this.call('head', () => this.inner.head(key));
  }
  list(prefix: string, opts?: ListOptions): Promise<ListPage> {
    return this.call('list', () => this.inner.list(prefix, opts));
  }
  deleteMany(keys: string[]): Promise<void> {
    return this.call('deleteMany', () => this.inner.deleteMany(keys));
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}
