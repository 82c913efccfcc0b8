import fs from 'node:fs';
import path from 'node:path';
import { KeepError, Repository, STATE_FILE, STATE_TABLES } from '@keep/core';
import { readStateTable } from './checkpoints.js';
import type { Upstream } from '../sync/upstream.js';

/**
 * Audit head checkpoints a replica received from its primary (GetAuditHead
 * after each pull), kept in the replica's state.mdb: the primary's log,
 * truncated or rewritten below one of them, fails `keepd audit verify
 * --against REPLICA_DATA` even when state.mdb on the primary was rewritten
 * to match. Keyed seq\0hash, so a primary answering another hash for a
 * seq already received leaves both (verify names the mismatch).
 */
export interface ReplicatedCheckpoint {
  seq: number;
  hash: string;
  /** the primary's clock when it answered (RFC 3339) */
  time: string;
  /** the replica's clock when it stored it (RFC 3339) */
  received: string;
  upstream: string;
}

/** The newest this many are kept; older ones fall below the primary's retention cut in time anyway. */
const KEPT = 1000;

const keyOf = (seq: number, hash: string) => `${String(seq).padStart(15, '0')}\0${hash}`;

function table(repo: Repository) {
  return repo.database<ReplicatedCheckpoint>(STATE_TABLES.auditReplicated);
}

/** Fetch the upstream's audit head and keep it; the stored checkpoint, or undefined when its log is empty or the head is known. */
export async function keepUpstreamAuditHead(repo: Repository, up: Upstream, upstream: string): Promise<ReplicatedCheckpoint | undefined> {
  const head = await up.auditHead();
  if (!head.seq) return undefined;
  const t = table(repo);
  const key = keyOf(head.seq, head.hash);
  if (t.get(key)) return undefined;
  const cp: ReplicatedCheckpoint = { ...head, received: new Date(repo.clock.now()).toISOString(), upstream };
  await t.put(key, cp);
  const keys = [...t.getKeys()];
  for (const old of keys.slice(0, Math.max(0, keys.length - KEPT))) await t.remove(old);
  return cp;
}

/** The checkpoints stored in a replica's data directory, lowest seq first (none when it holds none). */
export function readReplicatedCheckpoints(replicaData: string): ReplicatedCheckpoint[] {
  return readStateTable<ReplicatedCheckpoint, ReplicatedCheckpoint[]>(replicaData, STATE_TABLES.auditReplicated, (db) => [...db.getRange()].map((e) => e.value)) ?? [];
}

/** `--against DIR`: a replica's data directory with checkpoints in it (an empty one would prove nothing, so it is refused). */
export function replicaCheckpoints(replicaData: string): ReplicatedCheckpoint[] {
  if (!fs.existsSync(path.join(replicaData, STATE_FILE))) throw new KeepError('INVALID_ARGUMENT', `--against ${replicaData}: no keepd data directory there (no ${STATE_FILE})`);
  const cps = readReplicatedCheckpoints(replicaData);
  if (!cps.length) throw new KeepError('INVALID_ARGUMENT', `--against ${replicaData}: the replica holds no audit checkpoint from its primary yet (it stores one after each pull)`);
  return cps;
}
