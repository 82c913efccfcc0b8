import fs from 'node:fs';
import path from 'node:path';
import { DatasetSummary, generate, MutationSummary, mutate, planFor } from './datagen.js';
import { borgTool, detectRssMethod, keepTool, resticTool, RunResult, Tool } from './tools.js';
import { compareManifests, fmtBytes, fmtNum, manifest, mbps, MiB, removeTemp, tempDir, TreeManifest } from './util.js';

/**
 * End-to-end on local repositories, through the real command-line tools run as
 * child processes (so process start-up, key derivation, index open and fsyncs
 * are all in the figures). Every restore is compared file by file (SHA-256)
 * with its source; a difference fails the run.
 */

export interface E2EOptions {
  mode: 'quick' | 'default' | 'full';
  sizeMiB?: number;
  dirs: string[];
  peers: boolean;
  log: (line: string) => void;
}

export interface Phase {
  wall_s: number;
  mb_s: number;
  peak_rss_mib: number | null;
}

export interface ToolResult {
  tool: string;
  version: string;
  settings: string;
  init_s: number;
  backup1: Phase & { reported_sent: number | null };
  stored1: number;
  repo1: number;
  stored_ratio: number;
  rebackup: Phase;
  backup2?: Phase & { reported_sent: number | null; growth: number };
  stored2?: number;
  repo2?: number;
  restore: Phase & { bytes: number; verified: boolean; problems: string[] };
}

export interface ScenarioResult {
  name: string;
  input_bytes: number;
  input_files: number;
  dataset?: DatasetSummary;
  mutation?: MutationSummary;
  tools: ToolResult[];
  skipped: string[];
}

export interface E2EResult {
  rss_method: string;
  scenarios: ScenarioResult[];
  failures: string[];
}

const rssMiB = (r: RunResult) => (r.peak_rss_kib === null ? null : r.peak_rss_kib / 1024);
const phase = (r: RunResult, bytes: number): Phase => ({ wall_s: r.wall_s, mb_s: mbps(bytes, r.wall_s), peak_rss_mib: rssMiB(r) });

function tools(scratch: string, peers: boolean): { list: Tool[]; skipped: string[] } {
  const list: Tool[] = [keepTool()];
  const skipped: string[] = [];
  if (peers) {
    for (const t of [resticTool(scratch), borgTool(scratch)]) {
      if (typeof t === 'string') skipped.push(t);
      else list.push(t);
    }
  } else skipped.push('restic, borg: skipped (--no-peers)');
  return { list, skipped };
}

/** Where a restore of `source` into `target` puts the files: target/<absolute path>. */
const restoredRoot = (target: string, source: string) => path.join(target, path.resolve(source).replace(/^\/+/, ''));

async function restoreAndVerify(t: Tool, repo: string, label: string, source: string, src: TreeManifest, scratch: string, log: (s: string) => void) {
  const target = path.join(scratch, `restore-${t.name}`);
  fs.rmSync(target, { recursive: true, force: true });
  const r = await t.restore(repo, target, label);
  const got = manifest(restoredRoot(target, source));
  const problems = compareManifests(src, got);
  if (problems.length) log(`  ${t.name}: RESTORE MISMATCH (${problems.length}+): ${problems.slice(0, 3).join('; ')}`);
  fs.rmSync(target, { recursive: true, force: true });
  return { ...phase(r, got.bytes), bytes: got.bytes, verified: problems.length === 0, problems };
}

/** The generated tree: generation 1, unchanged re-backup, generation 2, restore of generation 2. */
async function generated(opts: E2EOptions): Promise<ScenarioResult> {
  const scratch = tempDir('e2e');
  try {
    const plan = planFor(opts.mode, opts.sizeMiB);
    const data = path.join(scratch, 'data');
    opts.log(`e2e: generating ${fmtNum(plan.totalBytes / MiB, 0)} MiB in ${plan.smallFiles} small + 5 large files under ${data}`);
    const { ds, summary } = generate(data, plan);
    opts.log(`e2e: generated ${fmtBytes(summary.bytes)} (${summary.files} files) in ${summary.gen_seconds.toFixed(1)} s`);
    const { list, skipped } = tools(scratch, opts.peers);
    for (const s of skipped) opts.log(`e2e: ${s}`);

    const partial = new Map<string, Partial<ToolResult>>();
    for (const t of list) {
      const repo = path.join(scratch, `repo-${t.name}`);
      const init = await t.init(repo);
      const b1 = await t.backup(repo, data, 'gen1');
      const stored1 = t.packBytes(repo);
      const repo1 = t.repoBytes(repo);
      const rb = await t.backup(repo, data, 'gen1-again');
      opts.log(
        `e2e: ${t.name}: init ${init.wall_s.toFixed(2)} s, backup ${b1.wall_s.toFixed(2)} s (${fmtNum(mbps(summary.bytes, b1.wall_s))} MB/s), stored ${fmtBytes(stored1)}, rebackup ${rb.wall_s.toFixed(2)} s`,
      );
      partial.set(t.name, {
        tool: t.name,
        version: t.version,
        settings: t.settings,
        init_s: init.wall_s,
        backup1: { ...phase(b1, summary.bytes), reported_sent: b1.reported_sent },
        stored1,
        repo1,
        stored_ratio: stored1 / summary.bytes,
        rebackup: phase(rb, summary.bytes),
      });
    }

    const mutation = mutate(ds);
    opts.log(
      `e2e: generation 2: ${fmtBytes(mutation.changed_bytes)} changed (${fmtNum(mutation.changed_fraction * 100)}%), ${mutation.files_modified} modified, ${mutation.files_added} added, ${mutation.files_deleted} deleted`,
    );
    const src2 = manifest(data);
    if (src2.bytes !== mutation.bytes_after) throw new Error(`generator bookkeeping: tree holds ${src2.bytes} bytes, expected ${mutation.bytes_after}`);

    const results: ToolResult[] = [];
    for (const t of list) {
      const repo = path.join(scratch, `repo-${t.name}`);
      const p = partial.get(t.name)!;
      const b2 = await t.backup(repo, data, 'gen2');
      const stored2 = t.packBytes(repo);
      const restore = await restoreAndVerify(t, repo, 'gen2', data, src2, scratch, opts.log);
      opts.log(
        `e2e: ${t.name}: gen-2 backup ${b2.wall_s.toFixed(2)} s, +${fmtBytes(stored2 - p.stored1!)}; restore ${restore.wall_s.toFixed(2)} s (${fmtNum(restore.mb_s)} MB/s) ${restore.verified ? 'verified' : 'MISMATCH'}`,
      );
      results.push({
        ...(p as ToolResult),
        backup2: { ...phase(b2, src2.bytes), reported_sent: b2.reported_sent, growth: stored2 - p.stored1! },
        stored2,
        repo2: t.repoBytes(repo),
        restore,
      });
      fs.rmSync(repo, { recursive: true, force: true });
    }
    return { name: `generated ${opts.mode}`, input_bytes: summary.bytes, input_files: summary.files, dataset: summary, mutation, tools: results, skipped };
  } finally {
    removeTemp(scratch);
  }
}

/** A user directory (read only): initial backup, unchanged re-backup, restore. */
async function directory(dir: string, opts: E2EOptions): Promise<ScenarioResult> {
  const source = path.resolve(dir);
  if (!fs.statSync(source).isDirectory()) throw new Error(`--dir ${dir}: not a directory`);
  const scratch = tempDir('dir');
  try {
    opts.log(`e2e: hashing ${source}`);
    const src = manifest(source);
    if (src.unreadable.length) opts.log(`e2e: ${src.unreadable.length} unreadable entries are left out of the comparison (first: ${src.unreadable[0]})`);
    opts.log(`e2e: ${source}: ${fmtBytes(src.bytes)} in ${src.fileCount} files`);
    const { list, skipped } = tools(scratch, opts.peers);
    const results: ToolResult[] = [];
    for (const t of list) {
      const repo = path.join(scratch, `repo-${t.name}`);
      const init = await t.init(repo);
      const b1 = await t.backup(repo, source, 'run1');
      const stored1 = t.packBytes(repo);
      const repo1 = t.repoBytes(repo);
      const rb = await t.backup(repo, source, 'run2');
      const restore = await restoreAndVerify(t, repo, 'run2', source, src, scratch, opts.log);
      opts.log(
        `e2e: ${t.name}: backup ${b1.wall_s.toFixed(2)} s (${fmtNum(mbps(src.bytes, b1.wall_s))} MB/s), rebackup ${rb.wall_s.toFixed(2)} s, restore ${restore.wall_s.toFixed(2)} s ${restore.verified ? 'verified' : 'MISMATCH'}`,
      );
      results.push({
        tool: t.name,
        version: t.version,
        settings: t.settings,
        init_s: init.wall_s,
        backup1: { ...phase(b1, src.bytes), reported_sent: b1.reported_sent },
        stored1,
        repo1,
        stored_ratio: src.bytes > 0 ? stored1 / src.bytes : NaN,
        rebackup: phase(rb, src.bytes),
        restore,
      });
      fs.rmSync(repo, { recursive: true, force: true });
    }
    return { name: `dir ${source}`, input_bytes: src.bytes, input_files: src.fileCount, tools: results, skipped };
  } finally {
    removeTemp(scratch);
  }
}

export async function runE2E(opts: E2EOptions): Promise<E2EResult> {
  const scenarios: ScenarioResult[] = [await generated(opts)];
  for (const d of opts.dirs) scenarios.push(await directory(d, opts));
  const failures: string[] = [];
  for (const s of scenarios) for (const t of s.tools) if (!t.restore.verified) failures.push(`${s.name}: ${t.tool} restore differs from the source: ${t.restore.problems.join('; ')}`);
  return { rss_method: detectRssMethod(), scenarios, failures };
}

// ---- presentation --------------------------------------------------------------

interface Figure {
  label: string;
  better: 'higher' | 'lower' | '';
  get: (t: ToolResult) => number | null | undefined;
  fmt: (n: number) => string;
}

const f1 = (n: number) => fmtNum(n, 1);
const f2 = (n: number) => fmtNum(n, 2);
const f3 = (n: number) => fmtNum(n, 3);
const mb = (n: number) => fmtNum(n / 1e6, 1);

export function figures(s: ScenarioResult): Figure[] {
  const out: Figure[] = [
    { label: 'init (s)', better: 'lower', get: (t) => t.init_s, fmt: f2 },
    { label: 'initial backup (s)', better: 'lower', get: (t) => t.backup1.wall_s, fmt: f2 },
    { label: 'initial backup MB/s (input / wall)', better: 'higher', get: (t) => t.backup1.mb_s, fmt: f1 },
    { label: 'initial backup peak RSS (MiB)', better: 'lower', get: (t) => t.backup1.peak_rss_mib, fmt: f1 },
    { label: 'stored after initial (MB, packs)', better: 'lower', get: (t) => t.stored1, fmt: mb },
    { label: 'stored / input', better: 'lower', get: (t) => t.stored_ratio, fmt: f3 },
    { label: 'repository dir after initial (MB)', better: 'lower', get: (t) => t.repo1, fmt: mb },
    { label: 'unchanged re-backup (s)', better: 'lower', get: (t) => t.rebackup.wall_s, fmt: f2 },
    { label: 'unchanged re-backup peak RSS (MiB)', better: 'lower', get: (t) => t.rebackup.peak_rss_mib, fmt: f1 },
  ];
  if (s.mutation) {
    out.push(
      { label: 'gen-2 backup (s)', better: 'lower', get: (t) => t.backup2?.wall_s, fmt: f2 },
      { label: 'gen-2 backup MB/s (tree / wall)', better: 'higher', get: (t) => t.backup2?.mb_s, fmt: f1 },
      { label: 'gen-2 bytes sent, reported (MB)', better: 'lower', get: (t) => t.backup2?.reported_sent, fmt: mb },
      { label: 'gen-2 repository growth (MB, packs)', better: 'lower', get: (t) => t.backup2?.growth, fmt: mb },
      { label: 'stored after gen 2 (MB, packs)', better: 'lower', get: (t) => t.stored2, fmt: mb },
    );
  }
  out.push(
    { label: `restore (s)${s.mutation ? ', gen 2' : ''}`, better: 'lower', get: (t) => t.restore.wall_s, fmt: f2 },
    { label: 'restore MB/s', better: 'higher', get: (t) => t.restore.mb_s, fmt: f1 },
    { label: 'restore peak RSS (MiB)', better: 'lower', get: (t) => t.restore.peak_rss_mib, fmt: f1 },
  );
  return out;
}

/** Rows of [figure, better, value per tool..., keep/peer ratio per peer...]. */
export function scenarioRows(s: ScenarioResult): { header: string[]; rows: string[][] } {
  const peers = s.tools.filter((t) => t.tool !== 'keep');
  const keep = s.tools.find((t) => t.tool === 'keep')!;
  const header = ['figure', 'better', ...s.tools.map((t) => t.tool), ...peers.map((p) => `keep/${p.tool}`)];
  const rows = figures(s).map((f) => {
    const vals = s.tools.map((t) => f.get(t));
    const k = f.get(keep);
    const ratios = peers.map((p) => {
      const v = f.get(p);
      return k !== null && k !== undefined && v !== null && v !== undefined && v !== 0 ? `${fmtNum(k / v, 2)}x` : '-';
    });
    return [f.label, f.better, ...vals.map((v) => (v === null || v === undefined ? '-' : f.fmt(v))), ...ratios];
  });
  rows.push(['restore byte-identical', '', ...s.tools.map((t) => (t.restore.verified ? 'yes' : 'NO')), ...peers.map(() => '')]);
  return { header, rows };
}

export function scenarioTitle(s: ScenarioResult): string {
  const parts = [`End-to-end, local repository: ${s.name} — ${fmtBytes(s.input_bytes)} (${fmtNum(s.input_bytes / MiB, 1)} MiB) in ${s.input_files} files`];
  if (s.dataset) {
    const d = s.dataset;
    parts.push(
      `  dataset: ${d.small_files} small files (${fmtBytes(d.small_bytes)}), ${d.large_files} large (${fmtBytes(d.large_bytes)}); text-like ${fmtBytes(d.text_bytes)}, random ${fmtBytes(d.random_bytes)}`,
    );
  }
  if (s.mutation) {
    const m = s.mutation;
    parts.push(
      `  generation 2: ${fmtBytes(m.changed_bytes)} changed (${fmtNum(m.changed_fraction * 100)}% of generation 1): ${m.files_modified} files modified, ${m.files_added} added, ${m.files_deleted} deleted -> ${fmtBytes(m.bytes_after)}`,
    );
  }
  return parts.join('\n');
}
