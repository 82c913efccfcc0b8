import fs from 'node:fs';
import path from 'node:path';
import { keepGrpcTool, ServerPhase } from './keepd.js';
import { Generation, realGenerations, syncTree } from './realdata.js';
import { borgTool, resticTool, RunResult, Tool } from './tools.js';
import { compareManifests, fmtNum, manifest, mbps, median, removeTemp, tempDir } from './util.js';

/**
 * The real-data run (issue 21): each tool backs up generation 1..N of the npm release set into
 * one source directory (each backup an incremental on the previous, as a host deploying release
 * after release), backs the last up once more unchanged, then restores it; every restore is compared with its source. keep runs
 * over gRPC to a real keepd on loopback, whose CPU and peak RSS are read per step; restic and
 * borg run when on the PATH, and the ratio columns need restic.
 */

export interface RealStep {
  step: string;
  /** bytes and files of the tree backed up (or restored) */
  bytes: number;
  files: number;
  /** files this generation rewrote in the source directory */
  changed: number | null;
  wall_s: number;
  mb_s: number;
  client_cpu_s: number | null;
  client_peak_mib: number | null;
  keepd_cpu_s: number | null;
  keepd_peak_mib: number | null;
  /** repository directory after the step, its cache left out (keepd's index.mdb) */
  repo_bytes: number;
  /** the tool's local cache after the step (keepd's index.mdb inside its directory, restic's cache directory) */
  cache_bytes: number | null;
}

export interface RealToolResult {
  tool: string;
  version: string;
  steps: RealStep[];
  problems: string[];
}

export interface RealResult {
  generations: Generation[];
  tools: RealToolResult[];
  skipped: string[];
  failures: string[];
}

const mib = (kib: number | null | undefined) => (kib === null || kib === undefined ? null : kib / 1024);

async function runTool(tool: Tool, gens: Generation[], scratch: string, log: (l: string) => void): Promise<RealToolResult> {
  const repo = path.join(scratch, `${tool.name}-repo`);
  const tree = path.join(scratch, 'tree');
  fs.rmSync(tree, { recursive: true, force: true });
  const res: RealToolResult = { tool: tool.name, version: tool.version, steps: [], problems: [] };
  await tool.init(repo);
  const raw: { step: string; r: RunResult; gen: Generation; changed: number | null; repo: number; cache: number | null }[] = [];
  // one step's result, with the repository and cache sizes it left
  const record = (step: string, r: RunResult, gen: Generation, changed: number | null) =>
    raw.push({ step, r, gen, changed, repo: tool.repoBytes(repo), cache: tool.cacheBytes?.(repo) ?? null });
  try {
    for (const g of gens) {
      const { written } = syncTree(g.dir, tree);
      log(`bench: real data: ${tool.name} backup of generation ${g.index} (${written} files changed)`);
      const r = await tool.backup(repo, tree, `gen${g.index}`);
      record(`gen${g.index}`, r, g, written);
    }
    const last = gens[gens.length - 1];
    // The last generation again, untouched: what a scheduled run costs when nothing changed.
    log(`bench: real data: ${tool.name} unchanged re-backup of generation ${last.index}`);
    const again = await tool.backup(repo, tree, 'unchanged');
    record('unchanged', again, last, 0);
    if (tool.resident) {
      // the same, as the resident agent runs it on its schedule (median of 3 runs)
      log(`bench: real data: ${tool.name} unchanged, by the resident agent`);
      const res = await tool.resident(repo, tree, 3);
      record('resident', { ...again, wall_s: median(res.durations_s), cpu_s: res.cpu_s_per_run, peak_rss_kib: res.peak_rss_kib }, last, 0);
    }
    const target = path.join(scratch, `${tool.name}-restore`);
    log(`bench: real data: ${tool.name} restore of generation ${last.index}`);
    const r = await tool.restore(repo, target, `gen${last.index}`);
    record('restore', r, last, null);
    const problems = compareManifests(manifest(tree), manifest(path.join(target, tree)));
    for (const p of problems) res.problems.push(`${tool.name} restore: ${p}`);
    removeTemp(target);
  } finally {
    const server = tool.close ? await tool.close(repo) : undefined;
    if (server) res.problems.push(...server.problems);
    const phase = (name: string): ServerPhase | undefined => server?.phases.find((p) => p.phase === name);
    res.steps = raw.map(({ step, r, gen, changed, repo: rb, cache }) => ({
      step,
      bytes: gen.bytes,
      files: gen.files,
      changed,
      wall_s: r.wall_s,
      mb_s: mbps(gen.bytes, r.wall_s),
      client_cpu_s: r.cpu_s,
      client_peak_mib: mib(r.peak_rss_kib),
      keepd_cpu_s: phase(step)?.cpu_s ?? null,
      keepd_peak_mib: mib(phase(step)?.peak_rss_kib),
      repo_bytes: rb - (tool.cacheInRepo ? (cache ?? 0) : 0),
      cache_bytes: cache,
    }));
  }
  return res;
}

export async function runRealData(opts: { cache: string; peers: boolean; log: (l: string) => void }): Promise<RealResult> {
  const gens = await realGenerations(opts.cache, opts.log);
  const scratch = tempDir('real');
  const out: RealResult = { generations: gens, tools: [], skipped: [], failures: [] };
  try {
    const tools: Tool[] = [keepGrpcTool(scratch)];
    for (const t of opts.peers ? [resticTool(scratch), borgTool(scratch)] : []) {
      if (typeof t === 'string') out.skipped.push(t);
      else tools.push(t);
    }
    for (const t of tools) {
      const r = await runTool(t, gens, scratch, opts.log);
      out.tools.push(r);
      out.failures.push(...r.problems);
    }
  } finally {
    removeTemp(scratch);
  }
  return out;
}

const f = (n: number | null | undefined, d = 2) => fmtNum(n, d);
const ratio = (a: number | null | undefined, b: number | null | undefined) => (a == null || b == null || b === 0 ? 'n/a' : `${fmtNum(a / b, 2)}x`);

/** One row per tool and step; the ratio columns compare with restic's same step ("n/a" without restic). */
export function realRows(r: RealResult): { header: string[]; rows: string[][] } {
  const restic = r.tools.find((t) => t.tool === 'restic');
  const rows = r.tools.flatMap((t) =>
    t.steps.map((s) => {
      // the resident agent's unchanged run against restic's unchanged re-backup (restic has no resident mode)
      const rs = restic?.steps.find((x) => x.step === (s.step === 'resident' ? 'unchanged' : s.step));
      return [
        t.tool,
        s.step,
        f(s.bytes / 1e6, 1),
        s.changed === null ? '-' : String(s.changed),
        f(s.wall_s),
        f(s.mb_s, 1),
        f(s.client_cpu_s),
        f(s.client_peak_mib, 1),
        f(s.keepd_cpu_s),
        f(s.keepd_peak_mib, 1),
        f(s.repo_bytes / 1e6, 1),
        s.cache_bytes === null ? '-' : f(s.cache_bytes / 1e6, 1),
        ratio(s.mb_s, rs?.mb_s),
        ratio(s.client_cpu_s == null ? null : s.client_cpu_s + (s.keepd_cpu_s ?? 0), rs?.client_cpu_s),
        ratio(s.repo_bytes, rs?.repo_bytes),
        ratio(s.repo_bytes + (s.cache_bytes ?? 0), rs ? rs.repo_bytes + (rs.cache_bytes ?? 0) : null),
      ];
    }),
  );
  return {
    header: ['tool', 'step', 'MB', 'files changed', 'wall s', 'MB/s', 'client CPU-s', 'client peak MiB', 'keepd CPU-s', 'keepd peak MiB', 'repo MB', 'cache MB', 'MB/s vs restic', 'CPU vs restic', 'repo vs restic', 'repo+cache vs restic'],
    rows,
  };
}

export function realTitle(r: RealResult): string {
  const g = r.generations;
  const mbs = g.map((x) => fmtNum(x.bytes / 1e6, 0)).join('/');
  const files = g.map((x) => x.files).join('/');
  return `Real data (issue 21): ${g.length} generations of npm releases (${mbs} MB, ${files} files), backed up in turn into one source directory, then the last restored; keep over gRPC to keepd on loopback`;
}

export function realNotes(r: RealResult): string[] {
  const notes = [...r.skipped];
  if (!r.tools.some((t) => t.tool === 'restic')) notes.push('restic is not installed here: the ratio columns print n/a (computed when restic is on the PATH)');
  notes.push('client CPU-s: user+system of the agent (or peer) process from /usr/bin/time; keepd CPU-s from /proc/<pid>/stat over the step; peaks are VmHWM; "CPU vs restic" compares agent+keepd with restic\'s whole process');
  notes.push('unchanged: the last generation backed up again with nothing changed; its "MB/s vs restic" is restic\'s time over keep\'s');
  notes.push('resident: the same unchanged backup run by `keep agent run` on its schedule (median of 3 runs, timed by the agent\'s log; CPU-s per run); its ratio columns compare with restic\'s unchanged step');
  notes.push('repo MB: the repository directory without its local cache (keepd\'s index.mdb, rebuilt from the index segments; restic keeps its cache in a directory of its own); cache MB: that cache; "repo+cache" compares both together');
  return notes;
}
