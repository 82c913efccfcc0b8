import { KeepError } from '@keep/core';
import { parse } from '../terminal/args.js';
import { printJson } from '../terminal/output.js';
import { openRepository } from '../repo/open.js';
import { Change, diffTrees } from '../tree/tree-diff.js';
import { TreeReader } from '../tree/tree-reader.js';
import { allowUnauthenticated, selectSnapshot } from './select.js';

export async function diffCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parse(argv, { 'allow-unauthenticated': { type: 'boolean' } });
  if (positionals.length !== 2) throw new KeepError('INVALID_ARGUMENT', 'usage: keep diff SNAPSHOT SNAPSHOT [--allow-unauthenticated]');
  const repo = await openRepository();
  try {
    const list = await repo.conn.snapshots();
    const opts = { allowUnauthenticated: allowUnauthenticated(values['allow-unauthenticated']) };
    const a = selectSnapshot(repo.keys, list, positionals[0], opts);
    const b = selectSnapshot(repo.keys, list, positionals[1], opts);
    const changes: Change[] = [];
    await diffTrees(new TreeReader(repo), Buffer.from(a.root, 'hex'), Buffer.from(b.root, 'hex'), '', changes);
    const count = (c: Change['change']) => changes.filter((x) => x.change === c).length;
    const summary = { added: count('added'), removed: count('removed'), modified: count('modified'), metadata: count('metadata') };
    if (values.json) printJson({ from: a.id, to: b.id, changes, summary });
    else {
      const sign = { added: '+', removed: '-', modified: 'M', metadata: 'U' } as const;
      for (const c of changes) console.log(`${sign[c.change]}    ${c.path}`);
      console.log(`${summary.added} added, ${summary.removed} removed, ${summary.modified} modified, ${summary.metadata} metadata only`);
    }
  } finally {
    await repo.conn.close();
  }
}
