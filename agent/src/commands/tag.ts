import { byTime, judgeSnapshots, JudgedSnapshot, KeepError, resolveSnapshot, SealedSnapshot, sealSnapshot, Snapshot } from '@keep/core';
import { parse } from '../terminal/args.js';
import { printJson } from '../terminal/output.js';
import { openRepository } from '../repo/open.js';

/** restic's tag lists: each value may be a comma list; empty entries dropped. */
function tagList(values: string[] | undefined): string[] {
  return (values ?? []).flatMap((v) => v.split(',')).map((t) => t.trim()).filter(Boolean);
}

/** The tags after --set, or --add then --remove (restic's order); undefined when they do not change. */
export function newTags(tags: readonly string[], change: { set?: string[]; add: string[]; remove: string[] }): string[] | undefined {
  let next = change.set ? [...new Set(change.set)] : [...tags];
  for (const t of change.add) if (!next.includes(t)) next.push(t);
  next = next.filter((t) => !change.remove.includes(t));
  return JSON.stringify(next) === JSON.stringify(tags) ? undefined : next;
}

/** The record with new tags, a new id and MAC, pointing at the first record it rewrites (restic's `original`). */
function rewritten(macKey: Buffer, s: Snapshot, tags: string[]): SealedSnapshot {
  const { id, mac: _mac, server_time: _server, ...fields } = s;
  return sealSnapshot(macKey, { ...fields, tags, original: s.original ?? id });
}

/**
 * `keep tag --add T --remove T --set T [SNAPSHOT...]`, restic's: each
 * snapshot whose tags change is rewritten (new id and MAC) and its old record
 * removed. No SNAPSHOT: every snapshot (of --source). Over gRPC for admin
 * tokens only: a rewrite removes a record.
 */
export async function tagCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parse(argv, {
    add: { type: 'string', multiple: true },
    remove: { type: 'string', multiple: true },
    set: { type: 'string', multiple: true },
    source: { type: 'string' },
  });
  const change = { set: values.set ? tagList(values.set) : undefined, add: tagList(values.add), remove: tagList(values.remove) };
  if (!change.set && change.add.length === 0 && change.remove.length === 0) throw new KeepError('INVALID_ARGUMENT', 'usage: keep tag --add T | --remove T | --set T [SNAPSHOT...] (nothing to do without one)');
  if (change.set && (change.add.length || change.remove.length)) throw new KeepError('INVALID_ARGUMENT', '--set cannot be combined with --add or --remove');
  const repo = await openRepository();
  try {
    const listed = await repo.conn.snapshots(values.source ? { source: values.source } : {});
    const judged = judgeSnapshots(repo.keys.snapshotMacKey, [...listed].sort(byTime));
    const chosen: JudgedSnapshot[] = positionals.length ? positionals.map((ref) => judged.find((j) => j.snapshot === resolveSnapshot(judged.map((x) => x.snapshot), ref))!) : judged;
    const replacements: { oldId: string; snapshot: SealedSnapshot }[] = [];
    for (const { snapshot: s, auth } of chosen) {
      // A rewrite MACs the record anew: it must not vouch for one the key never vouched for.
      if (auth.state !== 'authentic') throw new KeepError('CORRUPT', `snapshot ${s.id.slice(0, 8)} is ${auth.state === 'forged' ? `forged (${auth.reason})` : 'not authenticated (written before snapshot MACs)'}; not rewritten`);
      const tags = newTags(s.tags, change);
      if (tags && !replacements.some((r) => r.oldId === s.id)) replacements.push({ oldId: s.id, snapshot: rewritten(repo.keys.snapshotMacKey, s, tags) });
    }
    const done = replacements.length ? await repo.conn.replaceSnapshots(replacements) : [];
    const changed = replacements.map((r, i) => ({ old_id: r.oldId, new_id: done[i].id, tags: done[i].tags }));
    if (values.json) printJson({ changed, unchanged: chosen.length - changed.length });
    else {
      for (const c of changed) console.log(`modified tags on snapshot ${c.old_id.slice(0, 8)}: new id ${c.new_id.slice(0, 8)}, tags [${c.tags.join(', ')}]`);
      console.log(changed.length ? `modified ${changed.length} snapshot(s)` : 'no snapshots were modified');
    }
  } finally {
    await repo.conn.close();
  }
}
