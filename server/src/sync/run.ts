import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { atomicWrite, insecureFromEnv, KeepError, parseRepoConfig, processClock, Repository } from '@keep/core';
import { markReplica, readRole } from '../role.js';
import { SyncReport, syncFrom } from './pull.js';
import { Upstream } from './upstream.js';
import { audit, LOCAL } from '../audit/log.js';
import { syncFields } from '../audit/events.js';
import { keepdRepoOptions } from '../data-lock.js';
import { keepUpstreamAuditHead } from '../audit/replicated.js';
import { initInObjectStorage } from '../object-storage.js';

/**
 * The replica token for the upstream: KEEP_UPSTREAM_TOKEN(_FILE), else
 * KEEP_TOKEN(_FILE). Never a flag: flags show in ps.
 */
export function upstreamToken(env: NodeJS.ProcessEnv = process.env): string | undefined {
  for (const name of ['KEEP_UPSTREAM_TOKEN', 'KEEP_TOKEN']) {
    if (env[name]) return env[name]!.trim();
    const file = env[`${name}_FILE`];
    if (file) return fs.readFileSync(file, 'utf8').trim();
  }
  return undefined;
}

/** This replica's stable id (DATA/replica-id), created on first use; the primary counts replicas by it. */
export function replicaId(data: string): string {
  const f = path.join(data, 'replica-id');
  try {
    return fs.readFileSync(f, 'utf8').trim();
  } catch {
    const id = crypto.randomBytes(16).toString('hex');
    atomicWrite(f, id + '\n');
    return id;
  }
}

/** After a pull: report what this replica holds, so a primary in synchronous mode can answer its commits. */
export async function reportHoldings(repo: Repository, up: Upstream, synced: string[]): Promise<void> {
  const newest = repo.snapshots().reduce((t, s) => (s.time > t ? s.time : t), '');
  await up.report(replicaId(repo.dir), synced, newest);
}

/** Where a new replica keeps its repository: `keepd sync --store s3://bucket/prefix [--s3-path-style]`. */
export interface ReplicaStore {
  url: string;
  pathStyle: boolean;
}

/** `keepd sync`: open (or create, as a replica of `from`, in `store` when given) the repository in `data` and pull once. */
export async function runSync(data: string, from: string, source?: string, env: NodeJS.ProcessEnv = process.env, store?: ReplicaStore): Promise<SyncReport> {
  const up = new Upstream(from, upstreamToken(env), env.KEEP_CA, insecureFromEnv(env));
  try {
    let repo: Repository;
    if (Repository.exists(data)) {
      // A promoted replica follows no upstream any more (role.ts).
      if (store) throw new KeepError('INVALID_ARGUMENT', `${data} holds a replica already: --store only creates one`);
      if (readRole(data)?.role === 'promoted') throw new KeepError('INVALID_ARGUMENT', `${data} was promoted to a primary: it syncs from no upstream any more`);
      repo = await Repository.open(data, keepdRepoOptions(data));
    } else {
      // A new replica is the same repository: it adopts the primary's config (id, chunker), and is read-only until promoted.
      const { configJson } = await up.config();
      const config = parseRepoConfig(configJson, from);
      repo = store ? await initInObjectStorage(data, store.url, { pathStyle: store.pathStyle, config }) : await Repository.init(data, { config });
      markReplica(data, from, repo.clock ?? processClock());
    }
    // a bucket is written by one keepd at a time: a one-shot sync holds the writer lease as keepd serve does
    const writer = await repo.holdWriter('keepd sync').catch(async (e) => {
      await repo.close();
      throw e;
    });
    try {
      const r = await syncFrom(repo, up, { source, clock: repo.clock ?? processClock() });
      await audit(repo).record('sync', LOCAL, syncFields(r));
      // A primary that does not know ReportReplica (older keepd) or refuses it still served the pull.
      await reportHoldings(repo, up, r.snapshots_synced).catch(() => undefined);
      // Likewise GetAuditHead: the checkpoint is kept when the primary has one to give.
      await keepUpstreamAuditHead(repo, up, from).catch(() => undefined);
      return r;
    } finally {
      await writer.release().catch(() => undefined);
      await repo.close();
    }
  } finally {
    up.close();
  }
}

export function syncFailure(r: SyncReport): KeepError | undefined {
  if (r.snapshots_failed.length === 0) return undefined;
  return new KeepError('INCOMPLETE', `${r.snapshots_failed.length} snapshot(s) not synced: ${r.snapshots_failed[0].error}`);
}
