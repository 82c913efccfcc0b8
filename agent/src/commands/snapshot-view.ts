import { JudgedSnapshot, openMeta, RepoKeys, Snapshot, SnapshotMeta } from '@keep/core';
import { formatBytes } from '../terminal/output.js';

/** A record's sealed paths and user ({paths: [], username: ''} for records before them or that do not open). */
export function metaOf(keys: RepoKeys, s: Snapshot): SnapshotMeta {
  return openMeta(keys, s) ?? { paths: [], username: '' };
}

/**
 * One snapshot as `keep snapshots --json` prints it: restic's field names
 * where they overlap (time, tree, paths, hostname, username, tags, id,
 * short_id, original), and Keep's own fields as before.
 */
export function snapshotJson(keys: RepoKeys, { snapshot: s, auth }: JudgedSnapshot): Record<string, unknown> {
  const meta = metaOf(keys, s);
  return {
    id: s.id,
    short_id: s.id.slice(0, 8),
    time: s.time,
    tree: s.root,
    paths: meta.paths,
    hostname: s.host,
    username: meta.username,
    tags: s.tags,
    ...(s.original ? { original: s.original } : {}),
    source: s.source,
    host: s.host,
    server_time: s.server_time ?? null,
    parent: s.parent ?? null,
    size: s.stats.bytes,
    tier: s.tier ?? null,
    auth: auth.state,
    ...(auth.state === 'forged' ? { auth_error: auth.reason } : {}),
  };
}

const MARKS = { authentic: ' ', unauthenticated: '?', forged: '!' } as const;

export const TABLE_HEADER = 'ID        Time                      Source               Host             Size        Tags           Paths';

/** A snapshot's table rows: the first path on its line, further paths below it (restic's layout). */
export function tableRows(keys: RepoKeys, { snapshot: s, auth }: JudgedSnapshot): string[] {
  const paths = metaOf(keys, s).paths;
  const head = `${s.id.slice(0, 8)}${MARKS[auth.state]} ${s.time.padEnd(24)}  ${s.source.padEnd(19)}  ${s.host.padEnd(15)}  ${formatBytes(s.stats.bytes).padStart(10)}  ${s.tags.join(',').padEnd(13)}  `;
  return [head + (paths[0] ?? ''), ...paths.slice(1).map((p) => ' '.repeat(head.length) + p)];
}
