import fs from 'node:fs';
import path from 'node:path';
import { atomicWrite, KeepError, type parseChunkerSizes, parseRepoConfig, REPO_FILES, type RepoConfig, Repository, useObjectStorage } from '@keep/core';
import { keepdRepoOptions } from './data-lock.js';

/**
 * keepd opens repositories kept in object storage (store.json in the data
 * directory): the S3 client loads only when one is opened.
 */
export function registerObjectStorage(): void {
  useObjectStorage(async (dir, r) => {
    const { openObjectRepoStorage } = await import('@keep/core/store');
    return openObjectRepoStorage(dir, r);
  });
}

/**
 * `keepd init --store s3://bucket/prefix`: the data directory records where
 * the repository lives (store.json: URL, path style, and the endpoint and
 * region the environment names now; never credentials), then the config is
 * written to the bucket create-only (a new replica's: the primary's config,
 * `keepd sync --store`). A failure leaves no store.json behind.
 */
export async function initInObjectStorage(data: string, url: string, opts: { pathStyle: boolean; chunker?: ReturnType<typeof parseChunkerSizes>; config?: RepoConfig }): Promise<Repository> {
  return withNewStorageRecord(data, url, opts.pathStyle, () => Repository.init(data, { chunker: opts.chunker, config: opts.config }));
}

/**
 * `keepd init --store s3://bucket/prefix --attach`: a new data directory for
 * the repository a bucket already holds (the server's disk was lost, or
 * keepd moves to another host). The config is copied from the bucket and the
 * index rebuilt from it as `keepd rebuild-index` does; tokens, alerts, run
 * history and the audit log were local and start empty.
 */
export async function attachObjectStorage(data: string, url: string, opts: { pathStyle: boolean }): Promise<Repository> {
  const { openObjectRepoStorage, readStorageRecord } = await import('@keep/core/store');
  return withNewStorageRecord(data, url, opts.pathStyle, async () => {
    const storage = await openObjectRepoStorage(data, readStorageRecord(data)!);
    let text: string;
    try {
      text = await storage.readConfig();
    } finally {
      await storage.close();
    }
    parseRepoConfig(text, `${url}/${REPO_FILES.config}`);
    atomicWrite(path.join(data, REPO_FILES.config), text);
    // the open finds no index and rebuilds it from the bucket (index/rebuild.ts)
    return Repository.open(data, keepdRepoOptions(data));
  });
}

/** `make` with DIR/store.json naming `url`, removed again (with a config copy) when `make` fails. */
async function withNewStorageRecord(data: string, url: string, pathStyle: boolean, make: () => Promise<Repository>): Promise<Repository> {
  const { parseS3Url, envEndpoint, writeStorageRecord } = await import('@keep/core/store');
  if (!url.startsWith('s3://')) throw new KeepError('INVALID_ARGUMENT', `--store takes s3://bucket/prefix, not ${url}`);
  try {
    parseS3Url(url);
  } catch (e) {
    throw new KeepError('INVALID_ARGUMENT', (e as Error).message);
  }
  if (Repository.exists(data)) throw new KeepError('ALREADY_EXISTS', `${data} already holds a repository`);
  const record = path.join(data, REPO_FILES.store);
  if (fs.existsSync(record)) throw new KeepError('ALREADY_EXISTS', `${data} already names a store (${REPO_FILES.store})`);
  const region = process.env.AWS_REGION || process.env.AWS_DEFAULT_REGION || undefined;
  const endpoint = envEndpoint();
  writeStorageRecord(data, { v: 1, url, ...(endpoint ? { endpoint } : {}), ...(region ? { region } : {}), ...(pathStyle ? { pathStyle: true } : {}) });
  try {
    return await make();
  } catch (e) {
    fs.rmSync(record, { force: true });
    fs.rmSync(path.join(data, REPO_FILES.config), { force: true });
    throw e;
  }
}
