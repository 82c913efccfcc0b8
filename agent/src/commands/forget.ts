import { byTime, FORGET_FLAGS, ForgetGroup, groupLabel, judgeSnapshots, KeepError, parseGroupBy, parseTier, policyFromFlags, RepoKeys, Snapshot } from '@keep/core';
import { parse } from '../terminal/args.js';
import { printJson } from '../terminal/output.js';
import { openRepository } from '../repo/open.js';
import { metaOf, snapshotJson } from './snapshot-view.js';

/**
 * `keep forget`: restic's forget, by core's engine (the one `keepd forget`
 * runs): embedded in this process, or by keepd over gRPC for an admin token
 * (an agent token may add snapshots, never remove them).
 */
export async function forgetCommand(argv: string[]): Promise<void> {
  const { values } = parse(argv, FORGET_FLAGS);
  const dryRun = Boolean(values['dry-run']);
  const opts = {
    source: values.source as string | undefined,
    policy: policyFromFlags(values),
    tier: typeof values.tier === 'string' ? parseTier(values.tier) : undefined,
    groupBy: parseGroupBy(values['group-by'] as string | undefined),
    dryRun,
    prune: Boolean(values.prune),
  };
  const repo = await openRepository();
  try {
    // The records as they were, to show what each group kept and removed.
    const before = judgeSnapshots(repo.keys.snapshotMacKey, [...(await repo.conn.snapshots(opts.source ? { source: opts.source } : {}))].sort(byTime));
    const r = await repo.conn.forget(opts);
    const byId = new Map(before.map((j) => [j.snapshot.id, j]));
    if (values.json) {
      printJson(r.groups.map((g) => forgetGroupJson(repo.keys, g, byId)));
    } else {
      for (const g of r.groups) {
        console.log(`${g.source !== undefined ? 'source ' : ''}${groupLabel(g.key)}${pathsOf(repo.keys, g, byId)}: ${g.policy}`);
        for (const s of g.snapshots) console.log(`  ${s.keep ? 'keep  ' : 'remove'} ${s.id.slice(0, 8)} ${s.time}  ${s.reasons.join(', ')}`);
        console.log(`  ${dryRun ? 'would remove' : 'removed'} ${g.removed.length} snapshot(s)`);
        if (g.wal) console.log(`  WAL: ${dryRun ? 'would remove' : 'removed'} ${g.wal.removed.length} of ${g.wal.files} file(s)`);
      }
    }
    // (stderr: --json's stdout stays restic's array of groups)
    const pruned = r.prune;
    if (pruned) process.stderr.write(`keep: prune: removed ${pruned.blobs_removed} blobs, ${pruned.bytes_before - pruned.bytes_after} bytes freed\n`);
    for (const s of r.skipped) process.stderr.write(`keep: warning: ${s}: no policy (give --keep-* flags or --tier, or back it up with --tier); left alone\n`);
    if (r.groups.length === 0 && r.skipped.length) throw new KeepError('INVALID_ARGUMENT', 'no retention policy: give --keep-last/--keep-daily/... or --tier');
  } finally {
    await repo.conn.close();
  }
}

type Judged = Parameters<typeof snapshotJson>[1];

function pathsOf(keys: RepoKeys, g: ForgetGroup, byId: Map<string, Judged>): string {
  if (g.key.paths_group === undefined) return '';
  const first = byId.get(g.snapshots[0]?.id ?? '');
  const paths = first ? metaOf(keys, first.snapshot).paths : [];
  return ` [${paths.join(', ')}]`;
}

/** restic's forget --json group: its key fields, keep and remove lists, reasons; plus Keep's policy (and WAL for PostgreSQL). */
function forgetGroupJson(keys: RepoKeys, g: ForgetGroup, byId: Map<string, Judged>): Record<string, unknown> {
  const json = (id: string) => {
    const j = byId.get(id);
    return j ? snapshotJson(keys, j) : { id, short_id: id.slice(0, 8) };
  };
  const first: Snapshot | undefined = byId.get(g.snapshots[0]?.id ?? '')?.snapshot;
  return {
    group_key: {
      ...(g.key.source !== undefined ? { source: g.key.source } : {}),
      ...(g.key.paths_group !== undefined ? { paths: first ? metaOf(keys, first).paths : [] } : {}),
      ...(g.key.tags !== undefined ? { tags: g.key.tags } : {}),
    },
    keep: g.snapshots.filter((s) => s.keep).map((s) => json(s.id)),
    remove: g.snapshots.filter((s) => !s.keep).map((s) => json(s.id)),
    reasons: g.snapshots.filter((s) => s.keep).map((s) => ({ snapshot: json(s.id), matches: s.reasons })),
    policy: g.policy,
    ...(g.wal ? { wal: g.wal } : {}),
  };
}
