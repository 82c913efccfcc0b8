import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { stageRows, topOther, totalsOf } from './cpuprofile-stages.js';
import { content, Rng } from './datagen.js';
import { Keepd } from './keepd.js';
import { keepBinary, keepdBinary, run } from './tools.js';
import { textTable } from './util.js';

/**
 * node bench/dist/keepd-receive.js [--files N] [--profile DIR]
 *
 * keepd's CPU per 100 MB received on small files (issue 21), without the real-data set: one
 * backup over gRPC of a generated tree of N files (default 8000; sizes log-uniform from 64 B to
 * 48 KiB, 70% text; written once under the temp directory and reused). Prints keepd's CPU-s over
 * the backup alone (from /proc, start-up excluded), per 100 MB it stored, its peak RSS, the agent's
 * CPU-s and peak RSS, and the load average; with --profile, keepd runs under --cpu-prof and its
 * stage table follows (scaled to keepd's CPU over its whole life).
 */
const USAGE = 'usage: node bench/dist/keepd-receive.js [--files N] [--profile DIR]';

function smallFileTree(files: number): string {
  const tree = path.join(os.tmpdir(), `keep-bench-small-${files}`);
  if (fs.existsSync(path.join(tree, '.complete'))) return tree;
  fs.rmSync(tree, { recursive: true, force: true });
  const rng = new Rng(7);
  for (let i = 0; i < files; i++) {
    const size = Math.round(Math.exp(Math.log(64) + rng.float() * (Math.log(48 * 1024) - Math.log(64))));
    const text = rng.float() < 0.7;
    const p = path.join(tree, `d${Math.floor(i / 40)}`, `f${i}.${text ? 'txt' : 'bin'}`);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    fs.writeFileSync(p, content(text ? 'text' : 'random', size, rng));
  }
  fs.writeFileSync(path.join(tree, '.complete'), '');
  return tree;
}

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { files: { type: 'string' }, profile: { type: 'string' }, help: { type: 'boolean', short: 'h' } } });
  if (values.help) return console.log(USAGE), 0;
  const files = Number(values.files ?? 8000);
  if (!(files > 0)) throw new Error('--files takes a positive number');
  const tree = smallFileTree(files);
  const prof = values.profile && path.resolve(values.profile);
  if (prof) fs.rmSync(prof, { recursive: true, force: true });
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'keep-bench-receive-'));
  try {
    const data = path.join(scratch, 'keepd');
    fs.mkdirSync(data);
    // env(1) execs the bin script, which execs node: the pid is still keepd's own
    const k = await Keepd.start(data, prof ? { launch: ['env', `NODE_OPTIONS=--cpu-prof --cpu-prof-dir=${prof}`, keepdBinary()] } : {});
    const env = { ...process.env, KEEP_REPO: `grpc://127.0.0.1:${k.port}`, KEEP_TOKEN: k.token, KEEP_PASSWORD: 'keep-bench-password', KEEP_NO_PROGRESS: '1', KEEP_CACHE_DIR: path.join(scratch, 'cache') };
    let agent, phase;
    try {
      await run(keepBinary(), ['init', '--json'], { env });
      await k.phase('init');
      agent = await run(keepBinary(), ['backup', tree, '--json'], { env });
      phase = await k.phase('backup');
    } finally {
      const rep = await k.stop();
      if (rep.problems.length) throw new Error(rep.problems.join('; '));
      const stored = phase?.metrics?.keep_bytes_stored_total ?? NaN;
      const cpu = phase?.cpu_s ?? NaN;
      const mib = (kib: number | null | undefined) => (kib ? Math.round(kib / 1024) : null);
      console.log(
        JSON.stringify({
          files,
          load_1m: Number(os.loadavg()[0].toFixed(1)),
          received_mb: Number((stored / 1e6).toFixed(1)),
          keepd_backup_cpu_s: cpu,
          keepd_cpu_s_per_100mb: Number((cpu / (stored / 1e8)).toFixed(2)),
          keepd_peak_mib: mib(rep.peak_rss_kib),
          blobs_received: (phase?.metrics?.keep_blobs_stored_total ?? 0) + (phase?.metrics?.keep_blobs_deduplicated_total ?? 0),
          upload_messages: phase?.metrics?.keep_upload_messages_total ?? null,
          agent_cpu_s: agent?.cpu_s,
          agent_peak_mib: mib(agent?.peak_rss_kib),
        }),
      );
      if (prof && phase) {
        const t = totalsOf([prof], 'keepd');
        const { header, rows } = stageRows(t, stored, rep.cpu_s);
        console.log(textTable(header, rows, `CPU stage table: keepd, backup of ${files} small files (per GB received; ${rep.cpu_s} CPU-s over its life)`));
        console.log(`  "other", by file: ${topOther(t).join('; ')}`);
      }
    }
  } finally {
    fs.rmSync(scratch, { recursive: true, force: true });
  }
  return 0;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(`keepd-receive: ${(e as Error).message}`);
    process.exit(1);
  },
);
