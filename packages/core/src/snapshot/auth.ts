import crypto from 'node:crypto';
import { KeepError } from '../errors.js';
import { randomId } from '../fsutil.js';
import { MAX_CLOCK_SKEW_MS } from '../margins.js';
import { NewSnapshot, Snapshot, SnapshotStats } from './snapshot.js';

/**
 * Snapshot records are plaintext (the server applies retention without a
 * key), so the server could write one: an older root under a newer time
 * would be restored as "latest". Each record therefore carries the writer's
 * HMAC-SHA256 under `keys.snapshotMacKey` (HKDF of the master key, label
 * keep/v1/snapshot-mac), which keepd never has.
 *
 * The MAC covers every field the writer chooses, the id included: the writer
 * picks the id (16 random bytes), so a record re-filed under another id, an
 * edited field or a made-up record fails. What the server adds (server_time)
 * is not covered, but bounded: keepd refuses a commit whose time is more than
 * MAX_CLOCK_SKEW_MS ahead of its clock, so an honest server_time is never
 * earlier than time - MAX_CLOCK_SKEW_MS; an earlier one was rewritten. A later
 * one cannot move the snapshot forward (recordedTime takes the earlier).
 *
 * What the server can still do: withhold (delete) records, so "latest" is the
 * newest record it still shows; re-show a record it deleted (same id, same
 * bytes: a genuine snapshot); move a snapshot earlier by up to
 * MAX_CLOCK_SKEW_MS.
 */

/** The stats fields in MAC order. */
const STAT_FIELDS: (keyof SnapshotStats)[] = ['files', 'dirs', 'bytes', 'files_new', 'files_changed', 'files_unmodified', 'bytes_read', 'bytes_sent', 'chunks_new', 'duration_s'];

/** A record as a writer commits it: id chosen, fields normalized as the wire and the record file carry them, MAC set. */
export type SealedSnapshot = NewSnapshot & { id: string; mac: string };

/** The bytes the MAC covers: a JSON array in a fixed order (no object key order to agree on). */
export function canonicalSnapshot(s: NewSnapshot & { id: string }): Buffer {
  const stats = STAT_FIELDS.map((k) => s.stats[k]);
  const fields: unknown[] = ['keep/v1/snapshot', s.id, s.source, s.host, s.time, s.parent ?? '', s.root, s.tags, s.tier ?? '', stats];
  // Fields added later join only when set, so records written before them keep their MAC.
  if (s.paths_group || s.sealed_meta || s.original) fields.push(s.paths_group ?? '', s.sealed_meta ?? '', s.original ?? '');
  return Buffer.from(JSON.stringify(fields));
}

function mac(key: Buffer, s: NewSnapshot & { id: string }): Buffer {
  return crypto.createHmac('sha256', key).update(canonicalSnapshot(s)).digest();
}

/** Counts as the wire carries them (uint64: non-negative integers), the duration as a finite non-negative number. */
function normalStats(st: SnapshotStats): SnapshotStats {
  const count = (n: number) => (Number.isFinite(n) && n > 0 ? Math.round(n) : 0);
  const out = {} as SnapshotStats;
  for (const k of STAT_FIELDS) out[k] = k === 'duration_s' ? (Number.isFinite(st[k]) && st[k] > 0 ? st[k] : 0) : count(st[k]);
  return out;
}

/** Choose the id, normalize, and MAC a snapshot the writer is about to commit. */
export function sealSnapshot(macKey: Buffer, s: NewSnapshot): SealedSnapshot {
  const t = Date.parse(s.time);
  if (Number.isNaN(t)) throw new KeepError('INVALID_ARGUMENT', `snapshot time ${s.time} is not RFC 3339`);
  const out: NewSnapshot & { id: string } = {
    id: randomId(),
    source: s.source,
    host: s.host,
    time: new Date(t).toISOString(),
    ...(s.parent ? { parent: s.parent } : {}),
    root: s.root,
    tags: [...s.tags],
    ...(s.tier ? { tier: s.tier } : {}),
    stats: normalStats(s.stats),
    ...(s.paths_group ? { paths_group: s.paths_group } : {}),
    ...(s.sealed_meta ? { sealed_meta: s.sealed_meta } : {}),
    ...(s.original ? { original: s.original } : {}),
  };
  return { ...out, mac: mac(macKey, out).toString('hex') };
}

export type SnapshotAuth = { state: 'authentic' } | { state: 'unauthenticated' } | { state: 'forged'; reason: string };

const AUTHENTIC: SnapshotAuth = { state: 'authentic' };
const UNAUTHENTICATED: SnapshotAuth = { state: 'unauthenticated' };

/** One record on its own: its MAC, and keepd's recorded time against the bound keepd enforces. */
export function verifySnapshot(macKey: Buffer, s: Snapshot): SnapshotAuth {
  if (s.mac === undefined || s.mac === '') return UNAUTHENTICATED;
  const given = /^[0-9a-f]{64}$/.test(s.mac) ? Buffer.from(s.mac, 'hex') : Buffer.alloc(32);
  if (!crypto.timingSafeEqual(given, mac(macKey, s))) {
    return { state: 'forged', reason: 'its MAC does not match: the record was made, edited or re-filed under another id without the key' };
  }
  if (s.server_time !== undefined) {
    const server = Date.parse(s.server_time);
    const early = Date.parse(s.time) - server;
    if (Number.isNaN(server)) return { state: 'forged', reason: `its recorded commit time ${s.server_time} is not a time` };
    if (early > MAX_CLOCK_SKEW_MS) return { state: 'forged', reason: `its recorded commit time ${s.server_time} lies ${Math.round(early / 1000)} s before its own time ${s.time}, more than keepd ever accepts: rewritten` };
  }
  return AUTHENTIC;
}

export interface JudgedSnapshot {
  snapshot: Snapshot;
  auth: SnapshotAuth;
}

/**
 * Every record of a listing judged. A record without a MAC is
 * "unauthenticated" (written before records were authenticated), unless its
 * source already has an authenticated record at or before its time: writers
 * of that source MAC every record since, so one without is forged (or from
 * an agent too old to share the source with the others).
 */
export function judgeSnapshots(macKey: Buffer, list: readonly Snapshot[]): JudgedSnapshot[] {
  const judged = list.map((snapshot) => ({ snapshot, auth: verifySnapshot(macKey, snapshot) }));
  const firstAuthentic = new Map<string, number>();
  for (const j of judged) {
    if (j.auth.state !== 'authentic') continue;
    const t = Date.parse(j.snapshot.time);
    const cur = firstAuthentic.get(j.snapshot.source);
    if (cur === undefined || t < cur) firstAuthentic.set(j.snapshot.source, t);
  }
  for (const j of judged) {
    const since = firstAuthentic.get(j.snapshot.source);
    if (j.auth.state === 'unauthenticated' && since !== undefined && Date.parse(j.snapshot.time) >= since) {
      j.auth = { state: 'forged', reason: `it has no MAC but is newer than source ${j.snapshot.source}'s first authenticated snapshot (${new Date(since).toISOString()})` };
    }
  }
  return judged;
}
