import { parse } from '../cli/args.js';
import { formatBytes, printJson } from '../cli/output.js';
import { openRepository } from '../repo/open.js';

export async function snapshotsCommand(argv: string[]): Promise<void> {
  const { values } = parse(argv, { source: { type: 'string' } });
  const repo = await openRepository();
  try {
    const list = await repo.conn.snapshots(values.source ? { source: values.source } : {});
    if (values.json) {
      printJson(list.map((s) => ({ id: s.id, source: s.source, host: s.host, time: s.time, parent: s.parent ?? null, tags: s.tags, size: s.stats.bytes, tier: s.tier ?? null, tree: s.root })));
      return;
    }
    console.log('ID        Time                      Source               Host             Size        Tags');
    for (const s of list) {
      console.log(`${s.id.slice(0, 8)}  ${s.time.padEnd(24)}  ${s.source.padEnd(19)}  ${s.host.padEnd(15)}  ${formatBytes(s.stats.bytes).padStart(10)}  ${s.tags.join(',')}`);
    }
    console.log(`${list.length} snapshot${list.length === 1 ? '' : 's'}`);
  } finally {
    await repo.conn.close();
  }
}
