import { type GetResult, type ListOptions, type ListPage, type ObjectInfo, type ObjectStore, type PutOptions, StoreError, isStoreError } from './object-store.js';

export interface RetryPolicy {
  /** tries in all, the first included */
  attempts: number;
  /** the first back-off; doubled each retry, with jitter, up to maxDelayMs */
  baseDelayMs: number;
  maxDelayMs: number;
}

/** 503 SlowDown asks for back-off: ~0.2, 0.4, 0.8 ... s, a little over 25 s in all before giving up. */
export const DEFAULT_RETRY: RetryPolicy = { attempts: 8, baseDelayMs: 200, maxDelayMs: 10_000 };

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Retries a store's transient failures (503 SlowDown, timeouts, resets) with
 * exponential back-off and full jitter; answers (not found, precondition
 * failed) and hard failures pass through at once. A conditional put whose
 * first try may have landed (the reply was lost) and whose retry is then
 * refused is checked by content: the same bytes there mean it did land.
 */
export class RetryingStore implements ObjectStore {
  readonly capabilities: ObjectStore['capabilities'];
  readonly description: string;
  /** retries made (tests and metrics read it) */
  retries = 0;

  constructor(
    readonly inner: ObjectStore,
    private readonly policy: RetryPolicy = DEFAULT_RETRY,
  ) {
    this.capabilities = inner.capabilities;
    this.description = inner.description;
  }

  private async run<T>(what: string, op: (attempt: number) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await op(attempt);
      } catch (e) {
        if (!isStoreError(e, 'transient') || attempt >= this.policy.attempts) {
          if (isStoreError(e, 'transient')) throw new StoreError('transient', `${what}: gave up after ${attempt} tries: ${e.message}`, { cause: e });
          throw e;
        }
        this.retries++;
        const cap = Math.min(this.policy.maxDelayMs, this.policy.baseDelayMs * 2 ** (attempt - 1));
        await sleep(cap / 2 + Math.random() * (cap / 2));
      }
    }
  }

  async put(key: string, bytes: Buffer, opts: PutOptions = {}): Promise<{ etag: string }> {
    return this.run(`put ${key}`, async (attempt) => {
      try {
        return await this.inner.put(key, bytes, opts);
      } catch (e) {
        if (attempt > 1 && (opts.ifNoneMatch !== undefined || opts.ifMatch !== undefined) && isStoreError(e, 'precondition-failed')) {
          const there = await this.inner.get(key).catch(() => undefined);
          if (there?.bytes.equals(bytes)) return { etag: there.etag };
        }
        throw e;
      }
    });
  }

  get(key: string, opts?: { range?: { offset: number; length: number } }): Promise<GetResult> {
    return this.run(`get ${key}`, () => this.inner.get(key, opts));
  }

  head(key: string): Promise<ObjectInfo | undefined> {
    return this.run(`head ${key}`, () => this.inner.head(key));
  }

  list(prefix: string, opts?: ListOptions): Promise<ListPage> {
    return this.run(`list ${prefix}`, () => this.inner.list(prefix, opts));
  }

  /** Deleting is idempotent, so a whole batch is safe to resend. */
  deleteMany(keys: string[]): Promise<void> {
    return this.run(`delete ${keys.length} objects`, () => this.inner.deleteMany(keys));
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
