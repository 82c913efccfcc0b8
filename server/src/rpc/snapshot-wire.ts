import { create } from '@bufbuild/protobuf';
import type { Snapshot as CoreSnapshot } from '@keep/core';
import { Snapshot, SnapshotSchema } from '@keep/proto';

/** A snapshot record on the wire (uint64 counters as bigint; empty strings for absent parent/tier). */
export function toProtoSnapshot(s: CoreSnapshot): Snapshot {
  const st = s.stats;
  return create(SnapshotSchema, {
    id: s.id,
    source: s.source,
    host: s.host,
    time: s.time,
    parent: s.parent ?? '',
    root: s.root,
    tags: s.tags,
    tier: s.tier ?? '',
    mac: s.mac ?? '',
    serverTime: s.server_time ?? '',
    stats: {
      files: BigInt(st.files),
      dirs: BigInt(st.dirs),
      bytes: BigInt(st.bytes),
      filesNew: BigInt(st.files_new),
      filesChanged: BigInt(st.files_changed),
      filesUnmodified: BigInt(st.files_unmodified),
      bytesRead: BigInt(st.bytes_read),
      bytesSent: BigInt(st.bytes_sent),
      chunksNew: BigInt(st.chunks_new),
      durationS: st.duration_s,
    },
  });
}

/** The other way: a record from the wire (another keepd's, kept as it is: mac and server_time too; or an agent's commit). */
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
    tags: s.tags,
    ...(s.tier ? { tier: s.tier } : {}),
    ...(s.mac ? { mac: s.mac } : {}),
    ...(s.serverTime ? { server_time: s.serverTime } : {}),
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
