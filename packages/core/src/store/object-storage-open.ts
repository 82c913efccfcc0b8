import path from 'node:path';
import { REPO_DIRS } from '../formats.js';
import { MeteredStore } from './metered-store.js';
import { ObjectRepoStorage } from './object-repo-storage.js';
import { RetryingStore } from './retrying-store.js';
import { parseS3Url, S3ObjectStore, type S3StoreOptions } from './s3-store.js';
import type { StorageRecord } from './storage-record.js';

/** The endpoint the AWS environment names (the SDK's own variables), if any. */
export const envEndpoint = () => process.env.AWS_ENDPOINT_URL_S3 || process.env.AWS_ENDPOINT_URL || undefined;

/**
 * The S3 client options for a storage record: endpoint and region from the
 * environment first (AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL, AWS_REGION), else
 * what init recorded; credentials always from the SDK's chain
 * (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, ~/.aws/credentials).
 * AWS_REQUEST_CHECKSUM_CALCULATION=WHEN_REQUIRED for servers that refuse the
 * SDK's default checksums.
 */
export function s3Options(r: StorageRecord): S3StoreOptions {
  const { bucket, prefix } = parseS3Url(r.url);
  const checksums = process.env.AWS_REQUEST_CHECKSUM_CALCULATION?.toUpperCase();
  return {
    bucket,
    prefix,
    endpoint: envEndpoint() ?? r.endpoint,
    region: process.env.AWS_REGION || process.env.AWS_DEFAULT_REGION || r.region,
    forcePathStyle: r.pathStyle,
    requestChecksumCalculation: checksums === 'WHEN_REQUIRED' || checksums === 'WHEN_SUPPORTED' ? checksums : undefined,
  };
}

/** The repository storage of a data directory whose store.json names a bucket (storage-record.ts). */
export async function openObjectRepoStorage(dir: string, r: StorageRecord): Promise<ObjectRepoStorage> {
  // metered inside the retries: every request a retry makes counts
  const metered = new MeteredStore(new S3ObjectStore(s3Options(r)));
  return new ObjectRepoStorage(new RetryingStore(metered), path.join(dir, REPO_DIRS.tmp), () => metered.stats());
}
