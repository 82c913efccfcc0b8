import { CreateBucketCommand, DeleteObjectsCommand, GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { checkKey, type GetResult, type ListOptions, type ListPage, type ObjectInfo, type ObjectStore, type PutOptions, StoreError, type StoreErrorCode } from './object-store.js';

export interface S3StoreOptions {
  bucket: string;
  /** '' or ending in '/': every key is stored under it */
  prefix?: string;
  /** e.g. http://127.0.0.1:7480 for a RADOS Gateway; default: AWS (or AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL) */
  endpoint?: string;
  /** default: AWS_REGION / the config file, else us-east-1 */
  region?: string;
  /** bucket in the path, not the host name: RGW and most S3-compatible servers want it */
  forcePathStyle?: boolean;
  /** default: the SDK's chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE and ~/.aws/credentials, ...) */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** 'WHEN_REQUIRED' for S3-compatible servers that reject the SDK's default flexible checksums */
  requestChecksumCalculation?: 'WHEN_SUPPORTED' | 'WHEN_REQUIRED';
  /** a request that takes longer fails as transient (retrying-store.ts retries it) */
  requestTimeoutMs?: number;
  connectTimeoutMs?: number;
}

const DEFAULT_PAGE = 1000;
/** S3's limit for one DeleteObjects request. */
const MAX_DELETE_BATCH = 1000;

/**
 * ETags without their quotes: what If-Match is sent with. Ceph RGW 16
 * compares If-Match unquoted (a quoted value never matches there); S3
 * accepts either.
 */
const bareEtag = (etag: string | undefined) => (etag ?? '').replace(/^"(.*)"$/, '$1');

/** "s3://bucket/some/prefix" -> bucket and prefix ('' or ending in '/'). */
export function parseS3Url(url: string): { bucket: string; prefix: string } {
  const m = /^s3:\/\/([^/]+)\/?(.*)$/.exec(url);
  if (!m) throw new StoreError('failed', `not an s3:// URL: ${url} (expected s3://bucket/prefix)`);
  const rest = m[2].replace(/\/+$/, '');
  return { bucket: m[1], prefix: rest ? rest + '/' : '' };
}

interface AwsError {
  name?: string;
  code?: string;
  $metadata?: { httpStatusCode?: number };
}

const TRANSIENT_NAMES = new Set(['SlowDown', 'ServiceUnavailable', 'InternalError', 'RequestTimeout', 'RequestTimeoutException', 'TimeoutError', 'ThrottlingException', 'Throttling', 'TooManyRequestsException', 'ConditionalRequestConflict']);
const TRANSIENT_SOCKET = new Set(['ECONNRESET', 'ECONNREFUSED', 'ETIMEDOUT', 'EPIPE', 'EAI_AGAIN', 'ECONNABORTED']);

/** What an SDK error means for the store (object-store.ts StoreErrorCode). */
export function classifyS3Error(e: unknown): StoreErrorCode {
  const err = e as AwsError;
  const status = err.$metadata?.httpStatusCode;
  if (status === 404 || err.name === 'NoSuchKey' || err.name === 'NotFound') return 'not-found';
  if (status === 412 || err.name === 'PreconditionFailed') return 'precondition-failed';
  // 409 ConditionalRequestConflict: a concurrent conditional write; AWS says retry (which then answers 412 or succeeds)
  if ((status !== undefined && (status >= 500 || status === 429 || status === 409)) || TRANSIENT_NAMES.has(err.name ?? '') || TRANSIENT_SOCKET.has(err.code ?? '')) return 'transient';
  return 'failed';
}

function storeError(e: unknown, what: string): StoreError {
  if (e instanceof StoreError) return e;
  const err = e as AwsError;
  const status = err.$metadata?.httpStatusCode;
  return new StoreError(classifyS3Error(e), `${what}: ${err.name ?? 'error'}${status ? ` (HTTP ${status})` : ''}: ${(e as Error).message}`, { cause: e });
}

/**
 * An S3-compatible bucket (AWS S3, Ceph RGW, ...). Create-only puts use
 * If-None-Match: *, replacements If-Match; lists page with StartAfter (a
 * key, so a cursor works on every server). Retries are not the SDK's
 * (maxAttempts 1) but retrying-store.ts's, so one policy covers every store.
 */
export class S3ObjectStore implements ObjectStore {
  readonly capabilities = { conditionalCreate: true, conditionalReplace: true, maxDeleteBatch: MAX_DELETE_BATCH, local: false };
  readonly description: string;
  private readonly client: S3Client;
  private readonly bucket: string;
  private readonly prefix: string;

  constructor(opts: S3StoreOptions) {
    this.bucket = opts.bucket;
    this.prefix = opts.prefix ?? '';
    if (this.prefix && !this.prefix.endsWith('/')) throw new StoreError('failed', `S3 prefix must end in '/': ${this.prefix}`);
    this.description = `s3://${this.bucket}/${this.prefix}${opts.endpoint ? ` at ${opts.endpoint}` : ''}`;
    this.client = new S3Client({
      endpoint: opts.endpoint,
      region: opts.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? 'us-east-1',
      forcePathStyle: opts.forcePathStyle,
      credentials: opts.credentials,
      requestChecksumCalculation: opts.requestChecksumCalculation,
      responseChecksumValidation: opts.requestChecksumCalculation,
      maxAttempts: 1,
      requestHandler: { requestTimeout: opts.requestTimeoutMs ?? 120_000, connectionTimeout: opts.connectTimeoutMs ?? 10_000 },
    });
  }

  private full(key: string): string {
    checkKey(key);
    return this.prefix + key;
  }

  /** For set-up and tests: make the bucket unless it exists. */
  async createBucketIfMissing(): Promise<void> {
    try {
      await this.client.send(new CreateBucketCommand({ Bucket: this.bucket }));
    } catch (e) {
      const name = (e as AwsError).name;
      if (name === 'BucketAlreadyOwnedByYou' || name === 'BucketAlreadyExists') return;
      throw storeError(e, `create bucket ${this.bucket}`);
    }
  }

  async put(key: string, bytes: Buffer, opts: PutOptions = {}): Promise<{ etag: string }> {
    try {
      const res = await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: this.full(key), Body: bytes, ContentLength: bytes.length, IfNoneMatch: opts.ifNoneMatch, IfMatch: opts.ifMatch }));
      return { etag: bareEtag(res.ETag) };
    } catch (e) {
      throw storeError(e, `put ${key}`);
    }
  }

  async get(key: string, opts: { range?: { offset: number; length: number } } = {}): Promise<GetResult> {
    const r = opts.range;
    if (r && r.length <= 0) return this.emptyRange(key);
    try {
      const res = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.full(key), Range: r ? `bytes=${r.offset}-${r.offset + r.length - 1}` : undefined }));
      const arr = await res.Body!.transformToByteArray();
      const bytes = Buffer.from(arr.buffer, arr.byteOffset, arr.byteLength);
      const total = /\/(\d+)$/.exec(res.ContentRange ?? '')?.[1];
      return { bytes, etag: bareEtag(res.ETag), size: total !== undefined ? Number(total) : bytes.length };
    } catch (e) {
      // 416: the range starts at or past the end
      if ((e as AwsError).$metadata?.httpStatusCode === 416) return this.emptyRange(key);
      throw storeError(e, `get ${key}`);
    }
  }

  private async emptyRange(key: string): Promise<GetResult> {
    const info = await this.head(key);
    if (!info) throw new StoreError('not-found', `${key} not found in ${this.description}`);
    return { bytes: Buffer.alloc(0), etag: info.etag, size: info.size };
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    try {
      const res = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.full(key) }));
      return { key, size: res.ContentLength ?? 0, etag: bareEtag(res.ETag) };
    } catch (e) {
      const err = storeError(e, `head ${key}`);
      if (err.code === 'not-found') return undefined;
      throw err;
    }
  }

  async list(prefix: string, opts: ListOptions = {}): Promise<ListPage> {
    try {
      const limit = opts.limit ?? DEFAULT_PAGE;
      const res = await this.client.send(
        new ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.prefix + prefix, MaxKeys: limit, StartAfter: opts.cursor !== undefined ? this.prefix + opts.cursor : undefined }),
      );
      const objects = (res.Contents ?? []).map((o) => ({ key: o.Key!.slice(this.prefix.length), size: o.Size ?? 0, etag: bareEtag(o.ETag), ...(o.LastModified ? { modified: o.LastModified.getTime() } : {}) }));
      return { objects, cursor: res.IsTruncated && objects.length > 0 ? objects[objects.length - 1].key : undefined };
    } catch (e) {
      throw storeError(e, `list ${prefix}`);
    }
  }

  async deleteMany(keys: string[]): Promise<void> {
    for (let i = 0; i < keys.length; i += MAX_DELETE_BATCH) {
      const batch = keys.slice(i, i + MAX_DELETE_BATCH);
      let res;
      try {
        res = await this.client.send(new DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Quiet: true, Objects: batch.map((k) => ({ Key: this.full(k) })) } }));
      } catch (e) {
        throw storeError(e, `delete ${batch.length} objects`);
      }
      const failed = (res.Errors ?? []).filter((x) => x.Code !== 'NoSuchKey');
      if (failed.length > 0) {
        const transient = failed.every((x) => TRANSIENT_NAMES.has(x.Code ?? ''));
        throw new StoreError(transient ? 'transient' : 'failed', `delete: ${failed.length} of ${batch.length} objects not deleted (${failed[0].Code}: ${failed[0].Message})`);
      }
    }
  }

  async close(): Promise<void> {
    this.client.destroy();
  }
}
