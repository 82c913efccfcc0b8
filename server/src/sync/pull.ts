import { BlobType, Clock, Database, Id, KeepError, newSeenSet, parseBlob, randomId, Repository, SESSION_LEASE_MS, STATE_TABLES, storageHash, toHex } from '@keep/core';
import { TokenStore } from '../auth/tokens.js';
import { DedupScopeIndex } from '../dedup-scope.js';
import { announceImported } from '../replicas.js';
import type { Upstream } from './upstream.js';

/** Ids per ReadBlobs call. */
const FETCH_BATCH = 256;

export interface SyncReport {
  upstream: string;
  snapshots_synced: string[];
  snapshots_failed: { id: string; error: string }[];
  snapshots_pending: number;
  blobs_fetched: number;
  bytes_fetched: number;
  blobs_present: number;
  /** seconds the replica's newest snapshot is behind the primary's newest (0: caught up) */
  lag_s: number;
  duration_s: number;
}

/** What a replica remembers of each upstream (LMDB `replication`), for status and metrics. */
export interface ReplicationState {
  upstream: string;
  last_attempt: string;
  last_success?: string;
  last_error?: string;
  primary_newest?: string;
  local_newest?: string;
  lag_s: number;
  snapshots_pending: number;
  bytes_fetched_total: number;
}

export function replicationDb(repo: Repository): Database<ReplicationState, string> {
  return repo.database<ReplicationState>(STATE_TABLES.replication);
}

/**
 * Pull snapshots this repository lacks from `up`, oldest first. For each:
 * walk its DAG top-down, skipping subtrees already complete here; fetch what
 * is missing in streamed batches; verify every blob's storage hash (against
 * the primary's index and by re-hashing); store; then publish the snapshot
 * under its own id only after the closure check. Blobs already here are
 * touched, so this repository's GC cannot race the sync; the sync also holds
 * a session for its duration. Interrupted syncs resume: completed packs stay.
 */
export async function syncFrom(repo: Repository, up: Upstream, opts: { source?: string; clock: Clock }): Promise<SyncReport> {
  const started = opts.clock.now();
  const report: SyncReport = { upstream: up.location, snapshots_synced: [], snapshots_failed: [], snapshots_pending: 0, blobs_fetched: 0, bytes_fetched: 0, blobs_present: 0, lag_s: 0, duration_s: 0 };
  const state = replicationDb(repo);
  const prev = state.get(up.location);
  const sessionId = randomId();
  const scope = new DedupScopeIndex(repo);
  try {
    const remote = await up.config();
    if (remote.config.id !== repo.config.id) throw new KeepError('INVALID_ARGUMENT', `${up.location} holds repository ${remote.config.id}, this one is ${repo.config.id}: not a replica of it`);
    // Wrapped keys travel too: an agent can restore from the replica with its passphrase.
    const have = new Set(repo.keyFiles().map((k) => k.id));
    for (const k of remote.keys) if (!have.has(k.id)) await repo.addKeyFile(k);
    // Token records (hashes) and revocations too: the primary's tokens work here after a failover.
    const tokens = await up.tokens();
    if (tokens) await new TokenStore(repo).importRecords(tokens);

    await repo.registerSession(sessionId, { source: `sync:${up.location}`, host: up.address, started, leaseUntil: started + SESSION_LEASE_MS });
    const theirs = await up.snapshots(opts.source);
    const local = new Set(repo.snapshots().map((s) => s.id));
    const missing = theirs.filter((s) => !local.has(s.id));
    const gone = new Set<string>();
    for (const snap of missing) {
      try {
        await pullDag(repo, up, Buffer.from(snap.root, 'hex'), report, scope, snap.source);
        // The same rule as a scoped commit on the primary: the snapshot reaches only its source's blobs.
        await repo.importSnapshot(snap, scope.view(snap.source));
        report.snapshots_synced.push(snap.id);
        announceImported(repo, snap);
      } catch (e) {
        const notFound = e instanceof KeepError && e.code === 'NOT_FOUND';
        // A snapshot forgotten on the primary meanwhile is simply gone (not a failure, not pending);
        // a blob missing under a snapshot the primary still lists is a failure; anything else stops the run.
        if (notFound && !(await up.snapshots(snap.source).catch(() => [snap])).some((s) => s.id === snap.id)) gone.add(snap.id);
        else report.snapshots_failed.push({ id: snap.id, error: (e as Error).message });
        if (!notFound) break;
      }
      await repo.renewSession(sessionId, opts.clock.now() + SESSION_LEASE_MS);
    }
    const newest = (list: { time: string }[]) => list.reduce((t, s) => (s.time > t ? s.time : t), '');
    const localNewest = newest(repo.snapshots(opts.source ? { source: opts.source } : {}));
    const primaryNewest = newest(theirs.filter((s) => !gone.has(s.id)));
    report.snapshots_pending = missing.length - report.snapshots_synced.length - gone.size;
    report.lag_s = primaryNewest && localNewest < primaryNewest ? Math.max(0, (Date.parse(primaryNewest) - (localNewest ? Date.parse(localNewest) : 0)) / 1000) : 0;
    report.duration_s = (opts.clock.now() - started) / 1000;
    await state.put(up.location, {
      upstream: up.location,
      last_attempt: new Date(started).toISOString(),
      last_success: report.snapshots_failed.length ? prev?.last_success : new Date(opts.clock.now()).toISOString(),
      last_error: report.snapshots_failed[0]?.error,
      primary_newest: primaryNewest || undefined,
      local_newest: localNewest || undefined,
      lag_s: report.lag_s,
      snapshots_pending: report.snapshots_pending,
      bytes_fetched_total: (prev?.bytes_fetched_total ?? 0) + report.bytes_fetched,
    });
    return report;
  } catch (e) {
    await state.put(up.location, { ...(prev ?? { upstream: up.location, lag_s: 0, snapshots_pending: 0, bytes_fetched_total: 0 }), last_attempt: new Date(started).toISOString(), last_error: (e as Error).message });
    throw e;
  } finally {
    await repo.endSession(sessionId);
  }
}

/**
 * Fetch every blob of one DAG that this snapshot's source does not own here
 * yet; trees are walked top-down. A subtree is skipped when it is complete
 * and the source's. What is fetched is the source's own bytes (ReadBlobs
 * names the source) and is stored as the source's, as its copy when another
 * source stored the id first, so that source's agents restore from this
 * replica exactly what they stored on the primary (dedup scope).
 */
async function pullDag(repo: Repository, up: Upstream, root: Id, report: SyncReport, scope: DedupScopeIndex, source: string): Promise<void> {
  const tag = await scope.tagOf(source); // before the view: a source without a tag owns nothing
  const owns = scope.view(source);
  const writer = repo.openWriter({ owner: tag, owns: (id) => owns(id) !== undefined });
  // Bytes identical to the ones stored here first are bytes upstream shares between sources (an unscoped
  // source's, told "have it" there): shared here too. Other bytes are stored as this source's own.
  const shared: Id[] = [];
  const keep = async (id: Id, data: Buffer, hash: Buffer) => {
    const first = repo.lookup(id);
    if (first && hash.subarray(0, first.hash.length).equals(first.hash)) shared.push(id);
    else await writer.add(id, data, hash);
  };
  const fetchOf = (ids: Id[], onTree?: (stored: Buffer) => void) => fetch(up, keep, ids, report, source, onTree);
  const seen = newSeenSet(); // core's dag/seen-set.ts picks the set (V8's Set stops at 2^24 entries)
  let trees: Id[] = [root];
  try {
    while (trees.length) {
      const level = trees.filter((t) => !seen.has(toHex(t)));
      level.forEach((t) => seen.add(toHex(t)));
      trees = [];
      const fetchTrees: Id[] = [];
      const edgesOf: Buffer[] = [];
      for (const t of level) {
        if (owns(t)) {
          report.blobs_present++;
          if (repo.isComplete(t, owns)) continue; // its whole subtree is here, and the source's
          edgesOf.push(await repo.readBlob(t, owns));
        } else fetchTrees.push(t);
      }
      await fetchOf(fetchTrees, (b) => void edgesOf.push(b));
      const data: Id[] = [];
      const present: Id[] = [];
      for (const stored of edgesOf) {
        for (const e of parseBlob(stored).edges) {
          if (e.type === BlobType.Tree) trees.push(e.id);
          else if (seen.has(toHex(e.id))) continue;
          else {
            seen.add(toHex(e.id));
            (owns(e.id) ? present : data).push(e.id);
          }
        }
      }
      // Renew what is already here, so this repository's GC keeps it until the snapshot is published.
      if (present.length) await repo.touch(present, undefined, tag), (report.blobs_present += present.length);
      await fetchOf(data);
    }
    await writer.flush();
    await scope.record(source, shared);
  } catch (e) {
    // keep what arrived intact: a rerun resumes from there
    await writer.flush().catch(() => undefined);
    await scope.record(source, shared).catch(() => undefined);
    throw e;
  }
}

/** ReadBlobs streams running at once (the primary reads packs while this side writes). */
const FETCH_STREAMS = 4;

async function fetch(up: Upstream, keep: (id: Id, data: Buffer, hash: Buffer) => Promise<void>, ids: Id[], report: SyncReport, source: string, onTree?: (stored: Buffer) => void): Promise<void> {
  const batches: Id[][] = [];
  for (let i = 0; i < ids.length; i += FETCH_BATCH) batches.push(ids.slice(i, i + FETCH_BATCH));
  // Streams run in parallel; writes into the pack stay strictly one at a time.
  let writes: Promise<unknown> = Promise.resolve();
  const store = (id: Buffer, data: Buffer, hash: Buffer) => {
    const w = writes.then(() => keep(id, data, hash));
    writes = w.catch(() => undefined);
    return w;
  };
  let next = 0;
  const worker = async () => {
    while (next < batches.length) {
      const batch = batches[next++];
      const got = new Set<string>();
      await up.readBlobs(batch, async (id, data, hash) => {
        // Verified twice: against the primary's recorded hash, and by BlobWriter re-hashing the bytes.
        if (!storageHash(data).equals(hash)) throw new KeepError('CORRUPT', `blob ${toHex(id)} from ${up.location} does not match its storage hash; refused`);
        const copy = Buffer.from(data);
        await store(id, copy, hash);
        got.add(toHex(id));
        report.blobs_fetched++;
        report.bytes_fetched += data.length;
        if (onTree) onTree(copy);
      }, source);
      for (const id of batch) if (!got.has(toHex(id))) throw new KeepError('NOT_FOUND', `upstream did not send blob ${toHex(id)}`);
    }
  };
  await Promise.all(Array.from({ length: Math.min(FETCH_STREAMS, batches.length) }, worker));
  await writes;
}
