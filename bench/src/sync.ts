import path from 'node:path';
import { generate, mutate, planFor } from './datagen.js';
import { Keepd } from './keepd.js';
import { keepBinary, keepdBinary, keepSummary, run } from './tools.js';
import { fmtNum, mbps, removeTemp, tempDir } from './util.js';

/**
 * Issue 6: replication throughput. A real keepd serves a primary holding one
 * backup of the generated tree; `keepd sync` (a child process, replica token)
 * pulls it into an empty replica directory; then generation 2 is backed up and
 * synced again, which must move only the new blobs.
 */
export interface SyncBenchResult {
  data_mb: number;
  initial: { wall_s: number; bytes_fetched: number; mb_s: number; blobs: number };
  incremental: { wall_s: number; bytes_fetched: number; primary_bytes_sent: number; blobs_present: number };
  problems: string[];
}

export async function runSyncBench(opts: { mode: 'quick' | 'default' | 'full'; log: (l: string) => void }): Promise<SyncBenchResult> {
  const scratch = tempDir('keep-bench-sync-');
  const problems: string[] = [];
  let keepd: Keepd | undefined;
  try {
    const { ds, summary } = generate(path.join(scratch, 'tree'), planFor(opts.mode));
    keepd = await Keepd.start(path.join(scratch, 'primary'));
    const env = { ...process.env, KEEP_REPO: `grpc://127.0.0.1:${keepd.port}`, KEEP_TOKEN: keepd.token, KEEP_PASSWORD: 'bench', KEEP_NO_PROGRESS: '1', KEEP_CACHE_DIR: path.join(scratch, 'keep-cache') };
    await run(keepBinary(), ['init', '--json'], { env });
    await run(keepBinary(), ['backup', ds.root, '--json'], { env });
    const tok = JSON.parse((await run(keepdBinary(), ['token', 'create', '--data', path.join(scratch, 'primary'), '--role', 'replica', '--json'])).stdout).token as string;
    const syncEnv = { ...process.env, KEEP_TOKEN: tok };
    const sync = async () => {
      const r = await run(keepdBinary(), ['sync', '--data', path.join(scratch, 'replica'), '--from', `grpc://127.0.0.1:${keepd!.port}`, '--json'], { env: syncEnv });
      return { wall_s: r.wall_s, report: JSON.parse(r.stdout) as { bytes_fetched: number; blobs_fetched: number; blobs_present: number; snapshots_failed: unknown[] } };
    };
    opts.log('sync: initial pull');
    const first = await sync();
    mutate(ds);
    const b2 = keepSummary((await run(keepBinary(), ['backup', ds.root, '--json'], { env })).stdout) as { bytes_sent: number };
    opts.log('sync: incremental pull');
    const second = await sync();
    if (first.report.snapshots_failed.length || second.report.snapshots_failed.length) problems.push('a snapshot failed to sync');
    if (second.report.bytes_fetched > b2.bytes_sent * 1.25 + 1e6) problems.push(`incremental sync moved ${second.report.bytes_fetched} bytes for a backup that sent ${b2.bytes_sent}`);
    return {
      data_mb: summary.bytes / 1e6,
      initial: { wall_s: first.wall_s, bytes_fetched: first.report.bytes_fetched, mb_s: mbps(first.report.bytes_fetched, first.wall_s), blobs: first.report.blobs_fetched },
      incremental: { wall_s: second.wall_s, bytes_fetched: second.report.bytes_fetched, primary_bytes_sent: b2.bytes_sent, blobs_present: second.report.blobs_present },
      problems,
    };
  } finally {
    await keepd?.stop().catch(() => undefined);
    removeTemp(scratch);
  }
}

export function syncRows(r: SyncBenchResult): { header: string[]; rows: string[][] } {
  return {
    header: ['sync (issue 6)', 'value', 'detail'],
    rows: [
      ['initial sync MB/s (stored bytes / wall)', fmtNum(r.initial.mb_s), `${fmtNum(r.initial.bytes_fetched / 1e6)} MB, ${r.initial.blobs} blobs in ${fmtNum(r.initial.wall_s, 2)} s (keepd sync process, start-up included)`],
      ['incremental sync bytes moved (MB)', fmtNum(r.incremental.bytes_fetched / 1e6, 2), `the primary's backup sent ${fmtNum(r.incremental.primary_bytes_sent / 1e6, 2)} MB; ${r.incremental.blobs_present} blobs already present; ${fmtNum(r.incremental.wall_s, 2)} s`],
    ],
  };
}
