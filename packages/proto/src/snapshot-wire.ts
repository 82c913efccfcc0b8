import { create } from '@bufbuild/protobuf';
import { emptyStats, NewSnapshot, Snapshot as CoreSnapshot } from '@keep/core';
import { Snapshot, SnapshotSchema, SnapshotStatsSchema } from './gen/keep/v1/repository_pb.js';

/*
 * Snapshot records on the wire, both ways, for the agent (Commit,
 * ListSnapshots) and keepd (its answers, and a replica's pull).
 */

/** uint64 fields from numbers (counts and sizes: non-negative integers). */
const u64 = (n: number): bigint => BigInt(Number.isFinite(n) && n > 0 ? Math.round(n) : 0);

/**
 * A snapshot record on the wire (uint64 counters as bigint; empty strings for
 * absent fields). An agent's commit carries its own id and mac
 * (snapshot/auth.ts) and no server_time, which is keepd's to set.
 */
export function snapshotToWire(s: NewSnapshot & { server_time?: string }): Snapshot {
  const st = s.stats ?? emptyStats();
  return create(SnapshotSchema, {
    id: s.id ?? '',
    source: s.source,
    host: s.host,
    time: s.time,
    parent: s.parent ?? '',
    root: s.root,
    tags: s.tags ?? [],
    tier: s.tier ?? '',
    mac: s.mac ?? '',
    serverTime: s.server_time ?? '',
    pathsGroup: s.paths_group ?? '',
    sealedMeta: s.sealed_meta ?? '',
    original: s.original ?? '',
    stats: create(SnapshotStatsSchema, {
      files: u64(st.files),
      dirs: u64(st.dirs),
      bytes: u64(st.bytes),
      filesNew: u64(st.files_new),
      filesChanged: u64(st.files_changed),
      filesUnmodified: u64(st.files_unmodified),
      bytesRead: u64(st.bytes_read),
      bytesSent: u64(st.bytes_sent),
      chunksNew: u64(st.chunks_new),
      durationS: st.duration_s,
    }),
  });
}

/** The other way: a record from the wire, kept as it is (mac and server_time too); absent stats are zeros. */
export function snapshotFromWire(s: Snapshot): CoreSnapshot {
  const st = s.stats;
  const n = (v: bigint | undefined) => Number(v ?? 0n);
  return {
    id: s.id,
    source: s.source,
    host: s.host,
    time: s.time,
    ...(s.parent ? { parent: s.parent } : {}),
    root: s.root,
    tags: [...s.tags],
    ...(s.tier ? { tier: s.tier } : {}),
    ...(s.mac ? { mac: s.mac } : {}),
    ...(s.serverTime ? { server_time: s.serverTime } : {}),
    ...(s.pathsGroup ? { paths_group: s.pathsGroup } : {}),
    ...(s.sealedMeta ? { sealed_meta: s.sealedMeta } : {}),
    ...(s.original ? { original: s.original } : {}),
    stats: {
      files: n(st?.files),
      dirs: n(st?.dirs),
      bytes: n(st?.bytes),
      files_new: n(st?.filesNew),
      files_changed: n(st?.filesChanged),
      files_unmodified: n(st?.filesUnmodified),
      bytes_read: n(st?.bytesRead),
      bytes_sent: n(st?.bytesSent),
      chunks_new: n(st?.chunksNew),
      duration_s: st?.durationS ?? 0,
    },
  };
}
