import { byTime, judgeSnapshots } from '@keep/core';
import { parse } from '../cli/args.js';
import { formatBytes, printJson } from '../cli/output.js';
import { openRepository } from '../repo/open.js';

export async function snapshotsCommand(argv: string[]): Promise<void> {
  const { values } = parse(argv, { source: { type: 'string' } });
  const repo = await openRepository();
  try {
    const listed = await repo.conn.snapshots(values.source ? { source: values.source } : {});
    // Every record, each with its authentication (select.ts: restore uses only "authentic" ones unless told otherwise).
    const list = judgeSnapshots(repo.keys.snapshotMacKey, [...listed].sort(byTime));
    if (values.json) {
      printJson(
        list.map(({ snapshot: s, auth }) => ({
          id: s.id,
          source: s.source,
          host: s.host,
          time: s.time,
          server_time: s.server_time ?? null,
          parent: s.parent ?? null,
          tags: s.tags,
          size: s.stats.bytes,
          tier: s.tier ?? null,
          tree: s.root,
          auth: auth.state,
          ...(auth.state === 'forged' ? { auth_error: auth.reason } : {}),
        })),
      );
      return;
    }
    console.log('ID        Time                      Source               Host             Size        Tags');
    const marks = { authentic: ' ', unauthenticated: '?', forged: '!' } as const;
    for (const { snapshot: s, auth } of list) {
      console.log(`${s.id.slice(0, 8)}${marks[auth.state]} ${s.time.padEnd(24)}  ${s.source.padEnd(19)}  ${s.host.padEnd(15)}  ${formatBytes(s.stats.bytes).padStart(10)}  ${s.tags.join(',')}`);
    }
    console.log(`${list.length} snapshot${list.length === 1 ? '' : 's'}`);
    const count = (state: string) => list.filter((j) => j.auth.state === state).length;
    if (count('unauthenticated')) console.log(`?: ${count('unauthenticated')} without a MAC (written before snapshot records were authenticated)`);
    if (count('forged')) console.log(`!: ${count('forged')} FAILED authentication (forged or edited; \`keep check\` names them)`);
  } finally {
    await repo.conn.close();
  }
}
