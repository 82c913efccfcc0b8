import { keepBinary, keepdBinary, run } from './tools.js';

/**
 * Issue 18: a real `keep drill` of the kept repository's latest snapshot
 * (the same restore path a recovery takes, every file read back and
 * checked), and the RTO figures keepd derives from it (`keepd status`'s
 * drill row), to print beside the bench's own estimate (rto.ts).
 */
export interface DrillFigures {
  source: string;
  result: string;
  mode: string;
  /** measured by keep drill */
  duration_s: number;
  setup_s: number;
  bytes: number;
  files: number;
  /** the drill's transfer rate (bytes over its wall time less start-up), MB/s */
  mb_s: number;
  /** keepd status: the RTO estimate for the source's current size, and its method */
  keepd_rto_estimate_s: number | null;
  keepd_rate_bytes_s: number | null;
  problem?: string;
}

/** Drill `repo`'s newest snapshot through keepd (env: KEEP_REPO, KEEP_TOKEN, KEEP_PASSWORD) and read keepd's figures from its data directory. */
export async function drillFigures(repo: string, env: NodeJS.ProcessEnv): Promise<DrillFigures | undefined> {
  const snaps = await run(keepBinary(), ['snapshots', '--json'], { env });
  const list = JSON.parse(snaps.stdout || '[]') as { source: string; time: string }[];
  const source = list.at(-1)?.source;
  if (!source) return undefined;
  const r = await run(keepBinary(), ['drill', 'latest', '--source', source, '--json'], { env });
  const line = r.stdout.trim().split('\n').at(-1);
  if (!line) return { source, result: 'failure', mode: '-', duration_s: r.wall_s, setup_s: 0, bytes: 0, files: 0, mb_s: 0, keepd_rto_estimate_s: null, keepd_rate_bytes_s: null, problem: r.stderr.trim().split('\n').at(-1) };
  const d = JSON.parse(line) as { result: string; mode: string; duration_ms: number; setup_ms: number; bytes: number; files: number };
  const status = await run(keepdBinary(), ['status', '--data', repo, '--json']);
  const row = (JSON.parse(status.stdout).drills as { source: string; rto_estimate_s: number | null; rate_bytes_s: number | null }[]).find((x) => x.source === source);
  return {
    source,
    result: d.result,
    mode: d.mode,
    duration_s: d.duration_ms / 1000,
    setup_s: d.setup_ms / 1000,
    bytes: d.bytes,
    files: d.files,
    mb_s: d.bytes / 1e6 / Math.max(0.001, (d.duration_ms - d.setup_ms) / 1000),
    keepd_rto_estimate_s: row?.rto_estimate_s ?? null,
    keepd_rate_bytes_s: row?.rate_bytes_s ?? null,
  };
}
