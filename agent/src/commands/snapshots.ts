import { byTime, groupSnapshots, judgeSnapshots, parseGroupBy } from '@keep/core';
import { parse } from '../terminal/args.js';
import { printJson } from '../terminal/output.js';
import { openRepository } from '../repo/open.js';
import { metaOf, snapshotJson, TABLE_HEADER, tableRows } from './snapshot-view.js';

export async function snapshotsCommand(argv: string[]): Promise<void> {
  const { values } = parse(argv, { source: { type: 'string' }, 'group-by': { type: 'string' } });
  // restic's snapshots lists ungrouped unless asked; --group-by takes any of source, paths, tags
  const groupBy = values['group-by'] !== undefined ? parseGroupBy(values['group-by']) : undefined;
  const repo = await openRepository();
  try {
    const listed = await repo.conn.snapshots(values.source ? { source: values.source } : {});
    // Every record, each with its authentication (select.ts: restore uses only "authentic" ones unless told otherwise).
    const list = judgeSnapshots(repo.keys.snapshotMacKey, [...listed].sort(byTime));
    const keys = repo.keys;
    if (groupBy) {
      const judged = new Map(list.map((j) => [j.snapshot, j]));
      const groups = groupSnapshots(
        list.map((j) => j.snapshot),
        groupBy,
      ).map((g) => ({
        // restic's group_key; paths from the group's first record (one path set per paths_group)
        group_key: {
          ...(g.key.source !== undefined ? { source: g.key.source } : {}),
          ...(g.key.paths_group !== undefined ? { paths: metaOf(keys, g.snapshots[0]).paths } : {}),
          ...(g.key.tags !== undefined ? { tags: g.key.tags } : {}),
        },
        snapshots: g.snapshots.map((s) => judged.get(s)!),
      }));
      if (values.json) {
        printJson(groups.map((g) => ({ group_key: g.group_key, snapshots: g.snapshots.map((j) => snapshotJson(keys, j)) })));
        return;
      }
      for (const g of groups) {
        const k = g.group_key;
        const words = [k.source !== undefined ? `source [${k.source}]` : '', k.paths ? `paths [${k.paths.join(', ')}]` : '', k.tags ? `tags [${k.tags.join(', ')}]` : ''].filter(Boolean);
        console.log(`snapshots for (${words.join(', ')}):`);
        console.log(TABLE_HEADER);
        for (const j of g.snapshots) for (const row of tableRows(keys, j)) console.log(row);
        console.log(`${g.snapshots.length} snapshot${g.snapshots.length === 1 ? '' : 's'}\n`);
      }
      return;
    }
    if (values.json) {
      printJson(list.map((j) => snapshotJson(keys, j)));
      return;
    }
    console.log(TABLE_HEADER);
    for (const j of list) for (const row of tableRows(keys, j)) console.log(row);
    console.log(`${list.length} snapshot${list.length === 1 ? '' : 's'}`);
    const count = (state: string) => list.filter((j) => j.auth.state === state).length;
    if (count('unauthenticated')) console.log(`?: ${count('unauthenticated')} without a MAC (written before snapshot records were authenticated)`);
    if (count('forged')) console.log(`!: ${count('forged')} FAILED authentication (forged or edited; \`keep check\` names them)`);
  } finally {
    await repo.conn.close();
  }
}
