import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { checkLmdbFile, COPIES_DB, Copy, decodeCopy, REPO_FILES } from '@keep/core';

/**
 * Reads the per-source copies (copy-index.ts) out of the index a rebuild is
 * about to replace. The packs do not say which source stored which bytes, so
 * without this a rebuild would forget every copy. The index may be damaged
 * in ways the meta-page check cannot see, and LMDB crashes the process that
 * reads such a file: a child process reads it, so a crash costs the copies
 * (said in `lost`), never the rebuild.
 */
export function salvageCopies(dir: string): { copies: Copy[]; lost?: string } {
  const file = path.join(dir, REPO_FILES.index);
  const state = checkLmdbFile(file);
  if (state.kind === 'missing') return { copies: [] };
  if (state.kind === 'damaged') return { copies: [], lost: state.reason };
  const lmdb = createRequire(import.meta.url).resolve('lmdb');
  // Read-only, one "key value" hex line per copy; a table that does not exist is no copies.
  const program = `
    const { open } = require(process.argv[1]);
    const env = open({ path: process.argv[2], noSubdir: true, readOnly: true, maxDbs: 32 });
    let db;
    try { db = env.openDB({ name: process.argv[3], keyEncoding: 'binary', encoding: 'binary', create: false }); } catch { process.exit(0); }
    const out = [];
    for (const { key, value } of db.getRange()) out.push(key.toString('hex') + ' ' + value.toString('hex'));
    process.stdout.write(out.join('\\n'));`;
  const r = spawnSync(process.execPath, ['-e', program, lmdb, file, COPIES_DB], { encoding: 'utf8', maxBuffer: 1 << 30 });
  if (r.status !== 0) return { copies: [], lost: r.signal ? `reading it killed the reader (${r.signal})` : (r.stderr.trim().split('\n').pop() ?? `exit ${r.status}`) };
  const copies: Copy[] = [];
  for (const line of r.stdout.split('\n')) {
    if (!line) continue;
    const [k, v] = line.split(' ');
    try {
      copies.push(decodeCopy(Buffer.from(k, 'hex'), Buffer.from(v, 'hex')));
    } catch {
      // a damaged row: that source stores the blob again
    }
  }
  return { copies };
}
