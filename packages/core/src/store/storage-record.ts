import fs from 'node:fs';
import path from 'node:path';
import { KeepError } from '../errors.js';
import { REPO_FILES } from '../formats.js';
import { atomicWrite } from '../fsutil.js';
import { LocalRepoStorage } from './local-repo-storage.js';
import type { RepoStorage } from './repo-storage.js';

/**
 * DIR/store.json (formats.ts REPO_FILES.store): where a data directory's
 * packs, snapshot records and key files are when not in the directory
 * itself. Never credentials: those come from the AWS environment variables
 * or credentials file each time keepd starts.
 */
export interface StorageRecord {
  v: 1;
  /** s3://bucket/prefix */
  url: string;
  /** the endpoint at init (AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL), used when the environment names none */
  endpoint?: string;
  /** the region at init (AWS_REGION), used when the environment names none */
  region?: string;
  /** bucket in the path, not the host name (Ceph RGW, most S3-compatible servers) */
  pathStyle?: boolean;
}

export function readStorageRecord(dir: string): StorageRecord | undefined {
  let text: string;
  try {
    text = fs.readFileSync(path.join(dir, REPO_FILES.store), 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  const r = JSON.parse(text) as StorageRecord;
  if (r?.v !== 1 || typeof r.url !== 'string') throw new KeepError('CORRUPT', `${path.join(dir, REPO_FILES.store)} is not a storage record of version 1`);
  return r;
}

export function writeStorageRecord(dir: string, r: StorageRecord): void {
  fs.mkdirSync(dir, { recursive: true });
  atomicWrite(path.join(dir, REPO_FILES.store), JSON.stringify(r, null, 2) + '\n', 0o600);
}

type ObjectOpener = (dir: string, r: StorageRecord) => Promise<RepoStorage>;
let objectOpener: ObjectOpener | undefined;

/**
 * Lets this process open repositories kept in object storage (keepd
 * registers store/object-storage-open.ts at start): the S3 client is loaded
 * only by the programs that need it, never by the agent.
 */
export function useObjectStorage(open: ObjectOpener): void {
  objectOpener = open;
}

/** The storage of the repository in `dir`: the directory itself, or what its store.json names. */
export async function openRepoStorage(dir: string): Promise<RepoStorage> {
  const r = readStorageRecord(dir);
  if (!r) return new LocalRepoStorage(dir);
  if (!objectOpener) throw new KeepError('INVALID_ARGUMENT', `${dir} keeps its repository in ${r.url}: only keepd opens it`);
  return objectOpener(dir, r);
}
