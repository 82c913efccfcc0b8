/**
 * Repository directory layout (the server's --data DIR, or an embedded KEEP_REPO):
 *
 *   config.json              plaintext config (config.ts)
 *   keys/<id>.json           wrapped master keys (keys/keyfile.ts)
 *   packs/<xx>/<id>.pack     pack files (pack/format.ts)
 *   snapshots/<id>.json      snapshot records, the durable copy (snapshot/snapshot.ts)
 *   index/<name>.seg         index segments: packs' trailers gathered, so a rebuild need not read every pack (index/segment-format.ts)
 *   tmp/                     packs being written; never indexed
 *   index.mdb                LMDB: blobs, per-source copies, packs, snapshots (a cache of packs/ and snapshots/, rebuilt from them)
 *   state.mdb                LMDB: the server's own state (state-store.ts); not rebuildable
 *   maintenance.lock         held by prune and index rebuilds (pid-lock.ts)
 *   store.json               only when the repository lives in a bucket: {v, url, endpoint?, region?, pathStyle?}
 *                            (store/storage-record.ts); config.json is then a copy of the bucket's
 *   audit/audit-<seq>.jsonl  keepd's hash-chained audit log, one segment per month (server audit/record.ts)
 *
 * Write order (each step durable before the next): pack bytes -> fsync ->
 * rename into packs/ -> index; snapshot file -> fsync -> LMDB (the record and
 * its session's end in one transaction). A crash between
 * steps leaves bytes nobody points at (garbage for prune), never a pointer to
 * missing bytes. The index can be rebuilt from packs/ and snapshots/
 * (index/rebuild.ts) and is checked before it is opened (index/meta-check.ts).
 *
 * Every name and magic a repository's files carry is below (the codecs that
 * use them live beside their formats, taking their magics from here:
 * config.ts, keys/keyfile.ts, pack/format.ts, blob/format.ts,
 * snapshot/snapshot.ts; index.mdb's tables: index/tables.ts, blob-index.ts,
 * copy-index.ts; state.mdb's: state-store.ts, source-tags.ts). Table names are part of the on-disk format: renaming one
 * loses its data.
 */
/** First byte of every stored blob (blob/format.ts). */
export const BLOB_VERSION = 1;
/** A pack's first 8 bytes, its version after them, and its last 8 bytes (pack/format.ts). */
export const PACK_MAGIC = Buffer.from('KEEPPACK');
export const PACK_VERSION = 1;
export const TRAILER_MAGIC = Buffer.from('KEEPTRLR');
/** An index segment's first 8 bytes and its version byte (index/segment-format.ts). */
export const INDEX_SEGMENT_MAGIC = Buffer.from('KEEPISEG');
export const INDEX_SEGMENT_VERSION = 1;
/** An index segment's file name (or object key) after its name (index/segment-format.ts). */
export const INDEX_SEGMENT_SUFFIX = '.seg';
import type { RepoConfig } from './config.js';
import type { KeyFile } from './keys/keyfile.js';

/** The files at the top of a repository directory. */
export const REPO_FILES = {
  config: 'config.json',
  /** LMDB: a cache of packs/ and snapshots/, rebuilt from them */
  index: 'index.mdb',
  /** LMDB: keepd's own state; not rebuildable */
  state: 'state.mdb',
  maintenanceLock: 'maintenance.lock',
  /** where packs, snapshot records and key files are kept when not here (store/storage-record.ts); absent: in this directory */
  store: 'store.json',
} as const;

/** The directories of a repository (the layout above). */
export const REPO_DIRS = {
  packs: 'packs',
  snapshots: 'snapshots',
  keys: 'keys',
  /** index segments: an accelerator for index rebuilds, never needed by a pack (index/segment-format.ts) */
  index: 'index',
  /** packs being written; never indexed */
  tmp: 'tmp',
} as const;

/** The engine's tables in index.mdb (index/tables.ts). */
export const INDEX_TABLES = {
  /** blob records (blob-index.ts layout) */
  blobs: 'blobs-v3',
  /** per-source copies (copy-index.ts) */
  copies: 'copies',
  packs: 'packs',
  snapshots: 'snapshots',
  /** 'built': a rebuild finished; 'gcEpoch' */
  meta: 'meta',
  /** open writer sessions (sessions/registry.ts) */
  sessions: 'sessions',
} as const;

/** Blob tables of earlier versions, migrated into INDEX_TABLES.blobs on open: 'blobs' held msgpack records, 'blobs-v2' the 66-byte binary ones. */
export const OLD_BLOB_TABLES = ['blobs', 'blobs-v2'];
/** The one of OLD_BLOB_TABLES whose records are msgpack. */
export const MSGPACK_BLOB_TABLE = OLD_BLOB_TABLES[0];

/** keepd's tables in index.mdb (Repository.indexDatabase): derived data an index rebuild starts empty. */
export const KEEPD_INDEX_TABLES = {
  /** blob ids shared with a source (server dedup-scope.ts) */
  owners: 'owners',
  /** which sources' ownership was derived since the last rebuild (server ownership.ts) */
  ownersDerived: 'owners-derived',
} as const;

/** Tables in state.mdb (state-store.ts; keepd's through Repository.database). */
export const STATE_TABLES = {
  /** the state store's own: 'migrated-from-index' */
  meta: 'meta',
  /** source name -> owner tag (source-tags.ts) */
  sourceTags: 'source-tags',
  /** keepd's access tokens (server auth/tokens.ts) */
  tokens: 'tokens',
  /** keepd's replica registrations (server replicas.ts) */
  replicas: 'replicas',
  /** a replica's pull state (server sync/pull.ts) */
  replication: 'replication',
  /** agents' run reports, the last ones per source (server run-reports.ts) */
  runReports: 'run-reports',
  /** per source: run counters and the last run, success and failure (server run-reports.ts) */
  runSummaries: 'run-summaries',
  /** the audit log's checkpoints: 'head' {seq, hash}, 'pruned' {through, hash} (server audit/chain-state.ts) */
  audit: 'audit',
  /** seq\0hash -> an audit head checkpoint a replica received from its primary (server audit/replicated.ts) */
  auditReplicated: 'audit-replicated',
  /** token id + peer address pairs already seen, so a new peer is audited once (server audit/peers.ts) */
  auditPeers: 'audit-peers',
  /** kind\0name -> keepd's alert for that watchdog condition, firing or resolved (server control/alerts.ts) */
  alerts: 'alerts',
  /** 'cursor' -> the newest watchdog transition already turned into alerts (server control/alerts.ts) */
  alertsMeta: 'alerts-meta',
  /** time\0alert\0seq\0receiver -> an alert event for one webhook, pending or delivered (server control/outbox.ts) */
  alertOutbox: 'alert-outbox',
  /** kind\0name -> the watchdog's held state, with the candidate waiting out its hysteresis (server control/watch-store.ts) */
  watchdogStates: 'watchdog-states',
  /** time\0kind\0name -> a watchdog transition, which alerts are raised from (server control/watch-store.ts) */
  watchdogTransitions: 'watchdog-transitions',
  /** 'last' -> when the watchdog last evaluated, and its interval (server control/watch-store.ts) */
  watchdogMeta: 'watchdog-meta',
  /** time -> bytes used on the data directory's file system: the growth rate behind days-to-full */
  storageUsage: 'storage-usage',
  /** task\0time -> a maintenance run and its outcome (server control/maintenance.ts) */
  maintenanceRuns: 'maintenance-runs',
  /** source\0received time\0id -> a restore drill an agent reported, with keepd's receive time (server drills.ts) */
  drills: 'drills',
  /** sha256(cookie id) -> a dashboard session: token id, role, CSRF secret, expiry (server web/web-sessions.ts) */
  dashboardSessions: 'dashboard-sessions',
  /** replica\0time -> a change in what a replica reported holding (its newest snapshot's time), kept 35 days: replica lag over time (server replica-history.ts) */
  replicaReports: 'replica-reports',
  /** pack id -> {recorded, size}: a pack prune dropped from the index, deleted from object storage once PACK_DELETE_DELAY_MS passed (core gc/delayed-deletions.ts) */
  packDeletions: 'pack-deletions',
  /** pack id -> {size}: a published pack no stored index segment names yet; the next keepd writes one for what a crash left (core index/segment-journal.ts) */
  indexSegmentPending: 'index-segment-pending',
} as const;

/**
 * keepd's audit log (server audit/record.ts holds the record layout): a
 * directory of JSON-lines segments, each named by the seq of its first
 * record (zero-padded so names sort), chained by SHA-256 across segments.
 */
export const AUDIT_FILES = {
  dir: 'audit',
  prefix: 'audit-',
  suffix: '.jsonl',
  /** digits of the seq in a segment's name */
  seqDigits: 12,
  /** the hash that chains records */
  hash: 'sha256',
  /** record layout version (a record's `v`) */
  version: 1,
} as const;

/**
 * A repository in an object store (store/object-store.ts): the same keys as
 * the directory layout above ('/'-separated: config.json, keys/<id>.json,
 * packs/<xx>/<id>.pack, snapshots/<id>.json, index/<name>.seg), under the bucket prefix, plus:
 *
 *   writer.lease    JSON {v, holder, takenAt, renewedAt, expiresAt} (ms, the
 *                   writer's clock): one keepd writes a prefix at a time
 *                   (store/lease.ts); taken create-only, renewed If-Match.
 */
export const STORE_OBJECTS = {
  writerLease: 'writer.lease',
  /** the lease record's layout version */
  leaseVersion: 1,
} as const;

/** The format versions this build writes (keep version / keepd version report them); the literals are checked against the types that hold them. */
export const FORMAT_VERSIONS = {
  config: 1 satisfies RepoConfig['version'],
  key: 1 satisfies KeyFile['version'],
  pack: PACK_VERSION,
  blob: BLOB_VERSION,
  index: INDEX_TABLES.blobs,
} as const;
