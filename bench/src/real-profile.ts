import fs from 'node:fs';
import path from 'node:path';
import { stageRows, topOther, totalsOf } from './cpuprofile-stages.js';
import { Keepd } from './keepd.js';
import { Generation, realGenerations, syncTree } from './realdata.js';
import { keepBinary, keepdBinary, run } from './tools.js';
import { compareManifests, manifest, removeTemp, tempDir, textTable } from './util.js';

/**
 * One profiled keep-over-gRPC run on the real-data set (issue 21): the shipped bin scripts and
 * bundles of the agent and keepd, with NODE_OPTIONS=--cpu-prof (one profile per thread; the
 * bundles' source maps name each function's file for the stage rules). keepd runs twice on the
 * same data: once for the backups of generation 1..N, once for the restore of the last, so each
 * side's backup and restore get their own profiles. Writes the profiles under `dir`, returns the
 * four stage tables (CPU-s per GB: the agent's per GB scanned or restored, keepd's per GB received or
 * served; each scaled to its process's measured CPU).
 */

const profiling = (dir: string) => `--cpu-prof --cpu-prof-dir=${dir}`;

export interface StageTable {
  title: string;
  header: string[];
  rows: string[][];
  other: string[];
}

export async function runRealProfile(opts: { cache: string; dir: string; log: (l: string) => void }): Promise<StageTable[]> {
  const gens = await realGenerations(opts.cache, opts.log);
  fs.mkdirSync(opts.dir, { recursive: true });
  const scratch = tempDir('real-prof');
  const data = path.join(scratch, 'keepd');
  const tree = path.join(scratch, 'tree');
  const d = (n: string) => path.join(opts.dir, n);
  for (const n of ['agent-backup', 'agent-restore', 'keepd-backup', 'keepd-restore']) fs.rmSync(d(n), { recursive: true, force: true });
  let agentBackupCpu = 0;
  let keepdBackupCpu = 0;
  let agentRestoreCpu = 0;
  let keepdRestoreCpu = 0;
  // keepd's tables are per GB it received (stored) or served: what it handles, not what the agent scanned
  let received = 0;
  let served = 0;
  try {
    fs.mkdirSync(data);
    const envFor = (k: Keepd) => ({
      ...process.env,
      KEEP_REPO: `grpc://127.0.0.1:${k.port}`,
      KEEP_TOKEN: k.token,
      KEEP_PASSWORD: 'keep-bench-password',
      KEEP_NO_PROGRESS: '1',
      KEEP_CACHE_DIR: path.join(scratch, 'keep-cache'),
    });
    const agent = (dir: string, args: string[], k: Keepd) => run(keepBinary(), args, { env: { ...envFor(k), NODE_OPTIONS: profiling(dir) } });
    // env(1) execs the bin script, which execs node: the pid is still keepd's own
    const keepd = (dir: string) => ['env', `NODE_OPTIONS=${profiling(dir)}`, keepdBinary()];

    const k1 = await Keepd.start(data, { launch: keepd(d('keepd-backup')) });
    const token = k1.token;
    try {
      await run(keepBinary(), ['init', '--json'], { env: envFor(k1) });
      await k1.phase('init');
      for (const g of gens) {
        syncTree(g.dir, tree);
        opts.log(`bench: profile: backup of generation ${g.index}`);
        const r = await agent(d('agent-backup'), ['backup', tree, '--json'], k1);
        agentBackupCpu += r.cpu_s ?? NaN;
        received += (await k1.phase(`gen${g.index}`)).metrics?.keep_bytes_stored_total ?? NaN;
      }
    } finally {
      const rep = await k1.stop();
      if (rep.problems.length) throw new Error(rep.problems.join('; '));
      // the profile covers keepd's whole life (start-up and init too): so does the CPU it is scaled to
      keepdBackupCpu = rep.cpu_s ?? NaN;
    }
    const k2 = await Keepd.start(data, { again: { token }, launch: keepd(d('keepd-restore')) });
    const target = path.join(scratch, 'restore');
    try {
      opts.log('bench: profile: restore of the last generation');
      const r = await agent(d('agent-restore'), ['restore', 'latest', '--target', target, '--json'], k2);
      agentRestoreCpu = r.cpu_s ?? NaN;
      served = (await k2.phase('restore')).metrics?.keep_bytes_served_total ?? NaN;
    } finally {
      const rep = await k2.stop();
      if (rep.problems.length) throw new Error(rep.problems.join('; '));
      keepdRestoreCpu = rep.cpu_s ?? NaN;
    }
    const problems = compareManifests(manifest(tree), manifest(path.join(target, tree)));
    if (problems.length) throw new Error(`profiled restore differs from its source: ${problems.join('; ')}`);
  } finally {
    removeTemp(scratch);
  }
  const scanned = gens.reduce((a, g: Generation) => a + g.bytes, 0);
  const restored = gens[gens.length - 1].bytes;
  const table = (name: string, title: string, bytes: number, cpu: number): StageTable => {
    const t = totalsOf([d(name)], name.startsWith('keepd') ? 'keepd' : 'agent');
    return { title, ...stageRows(t, bytes, Number.isFinite(cpu) ? cpu : null), other: topOther(t) };
  };
  const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;
  return [
    table('agent-backup', `agent, backup of ${gens.length} generations (${mb(scanned)} scanned, ${agentBackupCpu.toFixed(2)} CPU-s measured)`, scanned, agentBackupCpu),
    table('keepd-backup', `keepd, backup of ${gens.length} generations (per GB received: ${mb(received)} stored, ${keepdBackupCpu.toFixed(2)} CPU-s over its life)`, received, keepdBackupCpu),
    table('agent-restore', `agent, restore of generation ${gens.length} (${mb(restored)}, ${agentRestoreCpu.toFixed(2)} CPU-s measured)`, restored, agentRestoreCpu),
    table('keepd-restore', `keepd, restore of generation ${gens.length} (per GB served: ${mb(served)}, ${keepdRestoreCpu.toFixed(2)} CPU-s over its life)`, served, keepdRestoreCpu),
  ];
}

export function stageText(ts: StageTable[]): string {
  return ts.map((t) => [textTable(t.header, t.rows, `CPU stage table: ${t.title}`), ...(t.other.length ? [`  "other", by file: ${t.other.join('; ')}`] : [])].join('\n')).join('\n\n');
}
