/**
 * The storage interface under a repository: where packs, snapshot records,
 * key files and config live (formats.ts names the keys). Objects are
 * immutable and content-named, so the interface is small: create-only put,
 * ranged get, head, paginated list, batch delete. The one object that is
 * replaced is the writer lease (lease.ts), with a compare-and-swap on its
 * ETag. Implementations: local-store.ts (a directory, today's layout) and
 * s3-store.ts (S3-compatible); retrying-store.ts wraps either.
 */

/** What an implementation guarantees; callers check before relying on it. */
export interface StoreCapabilities {
  /** put(..., { ifNoneMatch: '*' }) fails with 'precondition-failed' when the key exists, atomically */
  conditionalCreate: boolean;
  /** put(..., { ifMatch }) replaces only the version with that ETag, atomically */
  conditionalReplace: boolean;
  /** most keys deleteMany sends in one request */
  maxDeleteBatch: number;
  /** objects are files under a local directory (paths, fsync, rename) */
  local: boolean;
}

export interface ObjectInfo {
  key: string;
  size: number;
  /** opaque version tag: changes whenever the object is replaced */
  etag: string;
  /** when it was last written (ms), where a list tells */
  modified?: number;
}

export interface PutOptions {
  /** '*': create only; fail with 'precondition-failed' if the key exists */
  ifNoneMatch?: '*';
  /** replace only the version with this ETag; fail with 'precondition-failed' otherwise */
  ifMatch?: string;
}

export interface ByteRange {
  offset: number;
  length: number;
}

export interface GetResult {
  bytes: Buffer;
  etag: string;
  /** the whole object's size (a ranged get returns less) */
  size: number;
}

export interface ListOptions {
  /** from a previous page's `cursor` */
  cursor?: string;
  /** most objects in one page (default 1000) */
  limit?: number;
}

export interface ListPage {
  /** in key order */
  objects: ObjectInfo[];
  /** pass to the next list() call; absent on the last page */
  cursor?: string;
}

export interface ObjectStore {
  readonly capabilities: StoreCapabilities;
  /** Where the objects are, for messages (never credentials). */
  readonly description: string;
  put(key: string, bytes: Buffer, opts?: PutOptions): Promise<{ etag: string }>;
  /** Throws StoreError 'not-found'; a range past the end is cut at the end. */
  get(key: string, opts?: { range?: ByteRange }): Promise<GetResult>;
  head(key: string): Promise<ObjectInfo | undefined>;
  list(prefix: string, opts?: ListOptions): Promise<ListPage>;
  /** Keys that do not exist are not an error. */
  deleteMany(keys: string[]): Promise<void>;
  close(): Promise<void>;
}

/**
 * 'transient' failures (503 SlowDown, timeouts, resets) are retried by
 * retrying-store.ts; the others are answers.
 */
export type StoreErrorCode = 'not-found' | 'precondition-failed' | 'transient' | 'failed';

export class StoreError extends Error {
  constructor(
    readonly code: StoreErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'StoreError';
  }
}

export const isStoreError = (e: unknown, code: StoreErrorCode): e is StoreError => e instanceof StoreError && e.code === code;

/** Every object under `prefix`, page by page. */
export async function* listAll(store: ObjectStore, prefix: string, limit?: number): AsyncGenerator<ObjectInfo> {
  let cursor: string | undefined;
  do {
    const page = await store.list(prefix, { cursor, limit });
    yield* page.objects;
    cursor = page.cursor;
  } while (cursor !== undefined);
}

/** Keys are relative, '/'-separated, without '..' or empty segments (they become paths in local-store.ts). */
export function checkKey(key: string): void {
  if (!key || key.startsWith('/') || key.endsWith('/') || key.split('/').some((s) => s === '' || s === '.' || s === '..') || key.includes('\0')) {
    throw new StoreError('failed', `invalid object key ${JSON.stringify(key)}`);
  }
}
