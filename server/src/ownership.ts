import { Database, KEEPD_INDEX_TABLES, reachable, Repository } from '@keep/core';
import { DedupScopeIndex } from './dedup-scope.js';
import type { Logger } from './log.js';

/** Ids recorded per transaction while deriving. */
const DERIVE_BATCH = 4096;

/**
 * Blob ownership lives in the index (a cache), so an index rebuilt from the
 * packs, which know no owners, starts without it. It is derived again from
 * the snapshots: every blob reachable from a snapshot of source S is owned
 * by S (walking tree edges through S's own copies, keyless, as prune's mark
 * does). Blobs a source
 * uploaded in a session that never committed are not recovered: a rerun is
 * told to send them again (they are stored once). A marker in the index says
 * the derivation ran on this build; a rebuilt index has none.
 */
export async function ensureOwnership(repo: Repository, log?: Logger): Promise<{ derived: boolean; sources: number; owned: number }> {
  const marker = repo.indexDatabase<true>(KEEPD_INDEX_TABLES.ownersDerived);
  if (marker.get('done')) return { derived: false, sources: 0, owned: 0 };
  const scope = new DedupScopeIndex(repo);
  const roots = new Map<string, string[]>();
  for (const s of repo.snapshots()) roots.set(s.source, [...(roots.get(s.source) ?? []), s.root]);
  let owned = 0;
  for (const [source, rs] of roots) {
    // Through the source's own copies: a tree another source stored first (garbage, maybe) is not what this source's snapshot lists.
    const ids = [...(await reachable(repo, rs, (hex, e) => log?.warn({ source, tree: hex, err: e.message }, 'ownership: damaged tree not walked'), repo.views.ofSource(source)))];
    for (let i = 0; i < ids.length; i += DERIVE_BATCH) await scope.record(source, ids.slice(i, i + DERIVE_BATCH).map((h) => Buffer.from(h, 'hex')));
    owned += ids.length;
  }
  await (marker as Database<true, string>).put('done', true);
  if (roots.size) log?.info({ sources: roots.size, owned }, 'blob ownership derived from the snapshots (new index)');
  return { derived: true, sources: roots.size, owned };
}
