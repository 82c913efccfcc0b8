import { KeepError } from '../errors.js';

/**
 * A snapshot record. Stored in plaintext (the server applies retention and
 * shows status without a key), so it holds no file names: the backed-up
 * paths travel sealed (`sealed_meta`, sealed-meta.ts) and as a keyed hash
 * (`paths_group`) keepd can group by without learning them.
 */
export interface SnapshotStats {
  files: number;
  dirs: number;
  /** total size of the files in the snapshot */
  bytes: number;
  files_new: number;
  files_changed: number;
  files_unmodified: number;
  bytes_read: number;
  /** stored (encrypted) bytes this backup added to the repository */
  bytes_sent: number;
  chunks_new: number;
  duration_s: number;
}

export interface Snapshot {
  id: string;
  source: string;
  host: string;
  /** RFC 3339, UTC, millisecond precision */
  time: string;
  parent?: string;
  /** hex id of the root tree */
  root: string;
  tags: string[];
  tier?: string;
  stats: SnapshotStats;
  /**
   * Keyed hash (hex) of the sorted backed-up paths (sealed-meta.ts): equal
   * path sets have equal values, so keepd's `--group-by paths` works without
   * the names. Absent on records written before it and on path-less ones.
   */
  paths_group?: string;
  /** base64 AES-256-GCM of {paths, username} under keys.snapshotMetaKey (sealed-meta.ts); absent on older records */
  sealed_meta?: string;
  /** restic's `original`: the id of the record this one rewrote (`keep tag`), absent on records never rewritten */
  original?: string;
  /**
   * The agent's HMAC-SHA256 (hex) over every field above, under a key derived
   * from the master key (auth.ts): the server can keep or withhold a record,
   * not forge, edit or re-file one. Absent on records written before it.
   */
  mac?: string;
  /**
   * RFC 3339: the repository's own clock when the snapshot was committed
   * (keepd's; an embedded repository's process clock). Never the agent's.
   * Absent on records written before it. Not covered by `mac`.
   */
  server_time?: string;
}

/** What a writer commits: the repository records server_time; `id` is the writer's (covered by its mac) or, if absent, the repository's. */
export type NewSnapshot = Omit<Snapshot, 'id' | 'server_time'> & { id?: string };

export function emptyStats(): SnapshotStats {
  return { files: 0, dirs: 0, bytes: 0, files_new: 0, files_changed: 0, files_unmodified: 0, bytes_read: 0, bytes_sent: 0, chunks_new: 0, duration_s: 0 };
}

/**
 * When a snapshot was taken, as the repository vouches for it (ms): the
 * writer's own time, but never later than the repository's clock at commit.
 * A writer's clock running ahead cannot make its snapshot "latest", keep it
 * from retention or make an RPO look met; a long backup keeps its start time.
 * Records from before server_time: the writer's time alone.
 */
export function recordedTime(s: Pick<Snapshot, 'time' | 'server_time'>): number {
  const t = Date.parse(s.time);
  const server = s.server_time ? Date.parse(s.server_time) : NaN;
  return Number.isNaN(server) ? t : Math.min(t, server);
}

/** Oldest first by recorded time, then by id. */
export function byTime(a: Snapshot, b: Snapshot): number {
  const ta = recordedTime(a);
  const tb = recordedTime(b);
  return ta < tb ? -1 : ta > tb ? 1 : a.id < b.id ? -1 : 1;
}

/** Parse RFC 3339 (or anything Date understands unambiguously with a zone). */
export function parseTime(text: string): number {
  const t = Date.parse(text);
  if (Number.isNaN(t)) throw new KeepError('INVALID_ARGUMENT', `not a time: ${text} (use RFC 3339, e.g. 2026-11-23T10:00:00Z)`);
  return t;
}

/** The newest snapshot at or before `at` (the `--at` rule); `snapshots` sorted by time. */
export function pickAt(snapshots: Snapshot[], at: number): Snapshot | undefined {
  let best: Snapshot | undefined;
  for (const s of snapshots) if (recordedTime(s) <= at) best = s;
  return best;
}

/**
 * Resolve a user's reference: `latest`, a full id, or a unique id prefix
 * (at least 4 hex digits, like restic's short ids).
 */
export function resolveSnapshot(snapshots: Snapshot[], ref: string): Snapshot {
  if (ref === 'latest') {
    const s = snapshots[snapshots.length - 1];
    if (!s) throw new KeepError('NOT_FOUND', 'no snapshot found');
    return s;
  }
  if (!/^[0-9a-f]{4,}$/.test(ref)) throw new KeepError('INVALID_ARGUMENT', `not a snapshot id: ${ref}`);
  const hits = snapshots.filter((s) => s.id.startsWith(ref));
  if (hits.length === 0) throw new KeepError('NOT_FOUND', `no snapshot ${ref}`);
  if (hits.length > 1) throw new KeepError('INVALID_ARGUMENT', `snapshot prefix ${ref} is ambiguous (${hits.length} match)`);
  return hits[0];
}
