import { parseArgs } from 'node:util';
import { exitCodeFor, KeepError, Repository } from '@keep/core';
import { checkFailure, runCheck } from '../commands/check.js';
import { runStatus } from '../commands/status.js';

const USAGE = `keepd — the Keep repository server

usage: keepd COMMAND --data DIR [options]

  check --data DIR [--read-data | --read-data-subset PCT%] [--json]   verify without a key
  status --data DIR [--json]          per source: newest snapshot and its age against the RPO
  rebuild-index --data DIR [--json]   rebuild the LMDB index from pack trailers and snapshot files

every command takes --json (one JSON document on stdout)`;

function out(json: boolean | undefined, value: unknown, human: () => void): void {
  if (json) process.stdout.write(JSON.stringify(value, null, 2) + '\n');
  else human();
}

function args(argv: string[], extra: Record<string, { type: 'string' | 'boolean' }> = {}) {
  try {
    const { values } = parseArgs({ args: argv, options: { data: { type: 'string' }, json: { type: 'boolean' }, ...extra }, strict: true });
    if (!values.data) throw new KeepError('INVALID_ARGUMENT', '--data DIR is required');
    return values as Record<string, string | boolean | undefined> & { data: string; json?: boolean };
  } catch (e) {
    if (e instanceof KeepError) throw e;
    throw new KeepError('INVALID_ARGUMENT', (e as Error).message.split('\n')[0]);
  }
}

const commands: Record<string, (argv: string[]) => Promise<void>> = {
  async check(argv) {
    const a = args(argv, { 'read-data': { type: 'boolean' }, 'read-data-subset': { type: 'string' } });
    const subset = typeof a['read-data-subset'] === 'string' ? Number(a['read-data-subset'].replace(/%$/, '')) : undefined;
    if (subset !== undefined && !(subset > 0 && subset <= 100)) throw new KeepError('INVALID_ARGUMENT', '--read-data-subset takes a percentage in (0, 100]');
    const r = await runCheck({ data: a.data, readData: Boolean(a['read-data']), readDataSubset: subset });
    out(a.json, r, () => {
      console.log(`checked ${r.snapshots} snapshots, ${r.packs} packs, ${r.blobs} blobs; read ${r.blobs_read} blobs (${r.bytes_read} bytes)`);
      for (const e of r.errors) console.log(`error: ${e}`);
      if (r.orphan_packs.length) console.log(`${r.orphan_packs.length} pack(s) not in the index (prune removes them)`);
      if (r.unfinished_packs) console.log(`${r.unfinished_packs} unfinished pack(s) in tmp/ (left by an interrupted write)`);
    });
    if (!r.ok) throw checkFailure(r.errors);
  },
  async status(argv) {
    const a = args(argv);
    const s = await runStatus(a.data);
    out(a.json, s, () => {
      console.log(`repository ${s.repository}: ${s.snapshots} snapshots, ${s.blobs} blobs in ${s.packs} packs`);
      for (const x of s.sources) console.log(`${x.source.padEnd(20)} ${x.last_snapshot.slice(0, 8)} ${x.last_time}  age ${x.age_s}s  tier ${x.tier ?? '-'}  RPO ${x.rpo_state}`);
    });
  },
  async 'rebuild-index'(argv) {
    const a = args(argv);
    const repo = await Repository.open(a.data);
    try {
      const r = await repo.rebuildIndex();
      out(a.json, r, () => console.log(`rebuilt index: ${r.blobs} blobs from ${r.packs} packs${r.damaged_packs.length ? `; ${r.damaged_packs.length} damaged pack(s) skipped` : ''}`));
    } finally {
      await repo.close();
    }
  },
};

async function main(argv: string[]): Promise<void> {
  const [name, ...rest] = argv;
  if (!name || name === 'help' || name === '--help' || name === '-h') return void console.log(USAGE);
  const cmd = commands[name];
  if (!cmd) throw new KeepError('INVALID_ARGUMENT', `unknown command ${name} (see keepd help)`);
  await cmd(rest);
}

main(process.argv.slice(2)).then(
  () => process.exit(0),
  (e: Error) => {
    process.stderr.write(`keepd: error: ${(e.message || String(e)).split('\n')[0]}\n`);
    process.exit(exitCodeFor(e));
  },
);
