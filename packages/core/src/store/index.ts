export * from './object-store.js';
export { LocalDirectoryStore } from './local-store.js';
export { S3ObjectStore, type S3StoreOptions, parseS3Url, classifyS3Error } from './s3-store.js';
export { RetryingStore, DEFAULT_RETRY, type RetryPolicy } from './retrying-store.js';
export { WriterLease, type LeaseRecord, type LeaseOptions } from './lease.js';
export { repoKeys } from './repo-keys.js';
