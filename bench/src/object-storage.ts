import crypto from 'node:crypto';
import path from 'node:path';
import { generate, planFor } from './datagen.js';
import { Keepd } from './keepd.js';
import { keepBinary, keepdBinary, run } from './tools.js';
import { compareManifests, fmtInt, fmtNum, manifest, mbps, removeTemp, tempDir } from './util.js';

/**
 * Issue 20 item 5: backup and restore through keepd onto an S3 bucket against
 * onto keepd's own data directory, on the same generated tree in one run, and
 * the bucket requests per GB stored (keepd's keep_store_* counters). The
 * bucket is `--s3 s3://bucket/prefix` (a fresh sub-prefix per run); endpoint,
 * region and credentials come from the AWS environment, as keepd's do.
 * Then `keepd rebuild-index` on the same repository twice: from its index
 * segments, and with --from-trailers (every pack's trailer), timed, with the
 * bucket requests each made.
 */
export interface StoreTargetResult {
  target: 'local' | 's3';
  backup_s: number;
  restore_s: number;
  /** bytes the backup stored (keep_bytes_stored_total) */
  stored_bytes: number;
  /** requests to the bucket per operation, backup and restore together (none for the directory) */
  requests: Record<string, number>;
  problems: string[];
  /** keepd rebuild-index from the index segments, and from every pack's trailer */
  rebuild?: { segments: RebuildRun; trailers: RebuildRun };
}

/** One `keepd rebuild-index` run: wall time, and what its report says it read. */
export interface RebuildRun {
  wall_s: number;
  packs_from_segments: number;
  packs_from_trailers: number;
  /** bucket requests per operation during the rebuild (none for the directory) */
  requests: Record<string, number>;
}

async function rebuildIndex(data: string, fromTrailers: boolean): Promise<RebuildRun> {
  const r = await run(keepdBinary(), ['rebuild-index', '--data', data, ...(fromTrailers ? ['--from-trailers'] : []), '--json']);
  const report = JSON.parse(r.stdout);
  return { wall_s: r.wall_s, packs_from_segments: report.packs_from_segments, packs_from_trailers: report.packs_from_trailers, requests: report.store_requests ?? {} };
}

export interface ObjectStorageBenchResult {
  data_mb: number;
  targets: StoreTargetResult[];
}

/** keep_store_requests_total{op="..."} from a /metrics text. */
function requestsPerOp(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^keep_store_requests_total\{op="([a-z_]+)"\} ([0-9.eE+-]+)$/gm)) out[m[1]] = Number(m[2]);
  return out;
}

export async function runObjectStorageBench(opts: { mode: 'quick' | 'default' | 'full'; sizeMiB?: number; url: string; pathStyle: boolean; log: (l: string) => void }): Promise<ObjectStorageBenchResult> {
  const scratch = tempDir('keep-bench-s3-');
  const targets: StoreTargetResult[] = [];
  try {
    const { ds, summary } = generate(path.join(scratch, 'tree'), planFor(opts.mode, opts.sizeMiB));
    const source = manifest(ds.root);
    const prefix = `${opts.url.replace(/\/+$/, '')}/bench-${crypto.randomBytes(4).toString('hex')}`;
    for (const target of ['local', 's3'] as const) {
      opts.log(`object storage: backup and restore through keepd onto ${target === 's3' ? prefix : 'its data directory'}`);
      const data = path.join(scratch, `keepd-${target}`);
      const init = target === 's3' ? ['--store', prefix, ...(opts.pathStyle ? ['--s3-path-style'] : [])] : [];
      const keepd = await Keepd.start(data, { init });
      const problems: string[] = [];
      try {
        const env = { ...process.env, KEEP_REPO: `grpc://127.0.0.1:${keepd.port}`, KEEP_TOKEN: keepd.token, KEEP_PASSWORD: 'bench', KEEP_NO_PROGRESS: '1', KEEP_CACHE_DIR: path.join(scratch, `cache-${target}`) };
        await run(keepBinary(), ['init', '--json'], { env });
        const backup = await run(keepBinary(), ['backup', ds.root, '--json'], { env });
        const into = path.join(scratch, `restore-${target}`);
        const restore = await run(keepBinary(), ['restore', 'latest', '--target', into, '--json'], { env });
        problems.push(...compareManifests(source, manifest(path.join(into, ds.root))));
        const counters = await keepd.scrape();
        const text = await keepd.metricsText();
        targets.push({ target, backup_s: backup.wall_s, restore_s: restore.wall_s, stored_bytes: counters?.keep_bytes_stored_total ?? 0, requests: requestsPerOp(text ?? ''), problems });
      } finally {
        await keepd.stop().catch(() => undefined);
      }
      const done = targets[targets.length - 1];
      if (done?.target === target) {
        opts.log(`object storage: keepd rebuild-index from index segments, then from trailers (${target})`);
        done.rebuild = { segments: await rebuildIndex(data, false), trailers: await rebuildIndex(data, true) };
      }
    }
    return { data_mb: summary.bytes / 1e6, targets };
  } finally {
    removeTemp(scratch);
  }
}

export function objectStorageRows(r: ObjectStorageBenchResult): { header: string[]; rows: string[][] } {
  const ops = [...new Set(r.targets.flatMap((t) => Object.keys(t.requests)))].sort();
  return {
    header: ['keepd onto', 'backup MB/s', 'restore MB/s', 'stored MB', 'requests (backup + restore)', 'requests per GB stored', 'rebuild-index from segments', 'rebuild-index from trailers', 'problems'],
    rows: r.targets.map((t) => {
      const gb = t.stored_bytes / 1e9;
      return [
        t.target === 's3' ? 'S3 bucket' : 'data directory',
        fmtNum(mbps(r.data_mb * 1e6, t.backup_s)),
        fmtNum(mbps(r.data_mb * 1e6, t.restore_s)),
        fmtNum(t.stored_bytes / 1e6),
        ops.map((op) => `${op} ${fmtInt(t.requests[op] ?? 0)}`).join(', ') || '-',
        ops.map((op) => `${op} ${gb > 0 ? fmtInt((t.requests[op] ?? 0) / gb) : '-'}`).join(', ') || '-',
        t.rebuild ? rebuildCell(t.rebuild.segments) : '-',
        t.rebuild ? rebuildCell(t.rebuild.trailers) : '-',
        t.problems.length ? t.problems.slice(0, 3).join('; ') : 'none',
      ];
    }),
  };
}

/** "0.42 s, 3 packs from segments, 0 from trailers, get 4, head 0" */
function rebuildCell(r: RebuildRun): string {
  const reqs = Object.entries(r.requests)
    .filter(([op]) => op === 'get' || op === 'head' || op === 'list')
    .map(([op, n]) => `${op} ${fmtInt(n)}`);
  return [`${fmtNum(r.wall_s)} s`, `${fmtInt(r.packs_from_segments)} packs from segments, ${fmtInt(r.packs_from_trailers)} from trailers`, ...reqs].join(', ');
}
