import { TreeEntry } from '@keep/core';
import { parse } from '../terminal/args.js';
import { printJson } from '../terminal/output.js';
import { openRepository } from '../repo/open.js';
import { TreeReader } from '../tree/tree-reader.js';
import { allowUnauthenticated, selectSnapshot } from './select.js';

export function describeEntry(path: Buffer, e: TreeEntry) {
  return {
    path: path.toString(),
    type: e.type,
    mode: e.mode.toString(8).padStart(4, '0'),
    size: e.size,
    uid: e.uid,
    gid: e.gid,
    mtime: new Date(e.mtime[0] * 1000 + Math.floor(e.mtime[1] / 1e6)).toISOString(),
    ...(e.target ? { target: e.target.toString() } : {}),
  };
}

export async function lsCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parse(argv, { source: { type: 'string' }, at: { type: 'string' }, 'allow-unauthenticated': { type: 'boolean' } });
  const repo = await openRepository();
  try {
    const list = await repo.conn.snapshots(values.source ? { source: values.source } : {});
    const snap = selectSnapshot(repo.keys, list, positionals[0], { source: values.source, at: values.at, allowUnauthenticated: allowUnauthenticated(values['allow-unauthenticated']) });
    const under = positionals[1]?.replace(/\/+$/, '');
    const trees = new TreeReader(repo);
    const rows = [];
    for await (const { path, entry } of trees.walk(Buffer.from(snap.root, 'hex'))) {
      const p = path.toString();
      if (under && p !== under && !p.startsWith(under + '/')) continue;
      rows.push(describeEntry(path, entry));
    }
    if (values.json) printJson(rows);
    else for (const r of rows) console.log(`${r.type.padEnd(7)} ${r.mode} ${String(r.size).padStart(12)} ${r.mtime}  ${r.path}${r.target ? ` -> ${r.target}` : ''}`);
  } finally {
    await repo.conn.close();
  }
}
