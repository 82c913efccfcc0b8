import type { DrillFigures } from './drill.js';
import fs from 'node:fs';
import path from 'node:path';
import { DatasetSummary, generate, MutationSummary, mutate, planFor } from './datagen.js';
import { keepGrpcTool, ServerReport } from './keepd.js';
import { borgTool, detectRssMethod, keepTool, resticTool, RunResult, Tool } from './tools.js';
import { compareManifests, fmtBytes, fmtNum, manifest, mbps, median, MiB, removeTemp, tempDir, TreeManifest } from './util.js';

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
  /** also run keep against a real keepd over gRPC on loopback (tool "keep-grpc") */
  grpc: boolean;
  /** runs of the initial backup, unchanged re-backup and restore per tool (medians reported) */
  repeat: number;
  log: (line: string) => void;
}

export interface Phase {
  wall_s: number;
  mb_s: number;
  peak_rss_mib: number | null;
  /** user + system CPU seconds of the client process (median over the runs) */
  cpu_s: number | null;
  /** wall time of each run when the step was repeated (wall_s is their median) */
  runs_s?: number[];
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
  /** keep-grpc: what keepd used (peak RSS and CPU per phase, counters, clean stop) */
  server?: ServerReport;
  /** keep-grpc: a keep drill of the newest snapshot, and keepd's RTO estimate from it */
  drill?: DrillFigures;
}

export interface ScenarioResult {
  name: string;
  input_bytes: number;
  input_files: number;
  dataset?: DatasetSummary;
  mutation?: MutationSummary;
  repeat: number;
  tools: ToolResult[];
  skipped: string[];
}

export interface E2EResult {
  rss_method: string;
  scenarios: ScenarioResult[];
  failures: string[];
}

const rssMiB = (r: RunResult) => (r.peak_rss_kib === null ? null : r.peak_rss_kib / 1024);

/** Several runs of one step: median wall time (and CPU), the largest peak RSS. */
function phase(rs: RunResult[], bytes: number): Phase {
  const wall = median(rs.map((r) => r.wall_s));
  const rss = rs.map(rssMiB).filter((x): x is number => x !== null);
  const cpu = rs.map((r) => r.cpu_s).filter((x): x is number => x !== null);
  return {
    wall_s: wall,
    mb_s: mbps(bytes, wall),
    peak_rss_mib: rss.length ? Math.max(...rss) : null,
    cpu_s: cpu.length ? median(cpu) : null,
    ...(rs.length > 1 ? { runs_s: rs.map((r) => r.wall_s) } : {}),
  };
}

function tools(scratch: string, peers: boolean, grpc: boolean): { list: Tool[]; skipped: string[] } {
  const list: Tool[] = [keepTool(scratch)];
  const skipped: string[] = [];
  if (grpc) list.push(keepGrpcTool(scratch));
  else skipped.push('keep over gRPC: skipped (--no-grpc)');
  if (peers) {
    for (const t of [resticTool(scratch), borgTool(scratch)]) {
      if (typeof t === 'string') skipped.push(t);
      else list.push(t);
    }
  } else skipped.push('restic, borg: skipped (--no-peers)');
  return { list, skipped };
}

function logServer(t: Tool, s: ServerReport, log: (line: string) => void): void {
  log(
    `e2e: ${t.name}: keepd peak RSS ${s.peak_rss_kib === null ? '-' : fmtNum(s.peak_rss_kib / 1024)} MiB, CPU ${s.cpu_s === null ? '-' : s.cpu_s.toFixed(1)} s, stopped in ${s.stop_s.toFixed(2)} s (${s.exit})`,
  );
}

/** Where a restore of `source` into `target` puts the files: target/<absolute path>. */
const restoredRoot = (target: string, source: string) => path.join(target, path.resolve(source).replace(/^\/+/, ''));

/**
 * Restores into a fresh directory that the caller removes only after the scenario:
 * this VM's ext4 has no journal, and there the kernel steps over every inode freed
 * in the last 1-6 minutes of the same block group on each file it creates
 * (`recently_deleted` in find_inode_bit). Deleting one 5,000-file restore just before
 * the next made every tool's restore 2-3x slower and erratic, a cost of the
 * benchmark's own clean-up that a restore onto a real target does not pay.
 */
async function restoreAndVerify(t: Tool, repo: string, label: string, target: string, source: string, src: TreeManifest, log: (s: string) => void) {
  const r = await t.restore(repo, target, label);
  const got = manifest(restoredRoot(target, source));
  const problems = compareManifests(src, got);
  if (problems.length) log(`  ${t.name}: RESTORE MISMATCH (${problems.length}+): ${problems.slice(0, 3).join('; ')}`);
  return { run: r, bytes: got.bytes, problems };
}

interface ScenarioPlan {
  name: string;
  source: string;
  scratch: string;
  input_bytes: number;
  src1: TreeManifest;
  /** labels: initial backup, re-backups (a suffix is added per repeat) */
  first: string;
  again: string;
  /** generation 2 (generated data only): change the tree in place, return its new manifest */
  mutate?: () => { src2: TreeManifest; label: string };
}

/**
 * One scenario for every tool, steps interleaved across tools (so that load
 * from elsewhere on the machine falls on all of them alike):
 * initial backup x repeat (each into a fresh repository; the last one is kept),
 * unchanged re-backup x repeat, [generation 2 once], restore x repeat (each verified).
 */
async function runScenario(plan: ScenarioPlan, list: Tool[], opts: E2EOptions): Promise<ToolResult[]> {
  const R = Math.max(1, opts.repeat);
  const { scratch, source } = plan;
  const st = new Map<string, { repo: string; inits: RunResult[]; b1: BackupRunLike[]; rb: RunResult[]; extraServers: ServerReport[]; last: string; stored1: number; repo1: number }>();
  const repoOf = (t: Tool, rep: number) => path.join(scratch, `repo-${t.name}-${rep}`);
  // removed when the scenario ends, never between timed steps (see restoreAndVerify)
  const removeLater: string[] = [];
  try {
    for (let rep = 0; rep < R; rep++) {
      for (const t of list) {
        const repo = repoOf(t, rep);
        const s = st.get(t.name) ?? { repo, inits: [], b1: [], rb: [], extraServers: [], last: plan.first, stored1: 0, repo1: 0 };
        st.set(t.name, s);
        const init = await t.init(repo);
        const b1 = await t.backup(repo, source, plan.first);
        s.inits.push(init);
        s.b1.push(b1);
        s.stored1 = t.packBytes(repo);
        s.repo1 = t.repoBytes(repo);
        opts.log(
          `e2e: ${t.name}: init ${init.wall_s.toFixed(2)} s, backup ${b1.wall_s.toFixed(2)} s (${fmtNum(mbps(plan.input_bytes, b1.wall_s))} MB/s), stored ${fmtBytes(s.stored1)}${R > 1 ? ` [initial ${rep + 1}/${R}]` : ''}`,
        );
        if (rep < R - 1) {
          if (t.close) s.extraServers.push(await t.close(repo));
          removeLater.push(repo);
        } else s.repo = repo;
      }
    }
    for (let rep = 0; rep < R; rep++) {
      for (const t of list) {
        const s = st.get(t.name)!;
        const label = `${plan.again}-${rep + 1}`;
        const rb = await t.backup(s.repo, source, label);
        s.rb.push(rb);
        s.last = label;
        opts.log(`e2e: ${t.name}: unchanged re-backup ${rb.wall_s.toFixed(2)} s${R > 1 ? ` [${rep + 1}/${R}]` : ''}`);
      }
    }
    let src = plan.src1;
    const b2 = new Map<string, BackupRunLike & { stored2: number }>();
    if (plan.mutate) {
      const m = plan.mutate();
      src = m.src2;
      for (const t of list) {
        const s = st.get(t.name)!;
        const r = await t.backup(s.repo, source, m.label);
        s.last = m.label;
        const stored2 = t.packBytes(s.repo);
        b2.set(t.name, { ...r, stored2 });
        opts.log(`e2e: ${t.name}: gen-2 backup ${r.wall_s.toFixed(2)} s, +${fmtBytes(stored2 - s.stored1)}`);
      }
    }
    const restores = new Map<string, { runs: RunResult[]; bytes: number; problems: string[] }>();
    for (let rep = 0; rep < R; rep++) {
      for (const t of list) {
        const s = st.get(t.name)!;
        const target = path.join(scratch, `restore-${t.name}-${rep}`);
        removeLater.push(target);
        const r = await restoreAndVerify(t, s.repo, s.last, target, source, src, opts.log);
        const acc = restores.get(t.name) ?? { runs: [], bytes: r.bytes, problems: [] };
        restores.set(t.name, acc);
        acc.runs.push(r.run);
        for (const p of r.problems) if (!acc.problems.includes(p)) acc.problems.push(p);
        opts.log(
          `e2e: ${t.name}: restore ${r.run.wall_s.toFixed(2)} s (${fmtNum(mbps(r.bytes, r.run.wall_s))} MB/s) ${r.problems.length ? 'MISMATCH' : 'verified'}${R > 1 ? ` [${rep + 1}/${R}]` : ''}`,
        );
      }
    }
    const results: ToolResult[] = [];
    for (const t of list) {
      const s = st.get(t.name)!;
      const repo2 = t.repoBytes(s.repo);
      const drill = t.drill ? await t.drill(s.repo) : undefined;
      if (drill) opts.log(`e2e: ${t.name}: keep drill ${drill.result} (${drill.mode}) ${drill.duration_s.toFixed(2)} s for ${fmtBytes(drill.bytes)}; keepd's RTO estimate ${drill.keepd_rto_estimate_s ?? '-'} s`);
      let server = t.close ? await t.close(s.repo) : undefined;
      if (server) server = mergeServers(server, s.extraServers);
      if (server) logServer(t, server, opts.log);
      const r = restores.get(t.name)!;
      const g2 = b2.get(t.name);
      results.push({
        tool: t.name,
        version: t.version,
        settings: t.settings,
        init_s: median(s.inits.map((x) => x.wall_s)),
        backup1: { ...phase(s.b1, plan.input_bytes), reported_sent: s.b1[s.b1.length - 1].reported_sent },
        stored1: s.stored1,
        repo1: s.repo1,
        stored_ratio: plan.input_bytes > 0 ? s.stored1 / plan.input_bytes : NaN,
        rebackup: phase(s.rb, plan.input_bytes),
        ...(g2 ? { backup2: { ...phase([g2], src.bytes), reported_sent: g2.reported_sent, growth: g2.stored2 - s.stored1 }, stored2: g2.stored2, repo2 } : {}),
        restore: { ...phase(r.runs, r.bytes), bytes: r.bytes, verified: r.problems.length === 0, problems: r.problems },
        ...(server ? { server } : {}),
        ...(drill ? { drill } : {}),
      });
      removeLater.push(s.repo);
    }
    return results;
  } finally {
    // a failed step must not leave a keepd running
    for (const t of list) {
      const s = st.get(t.name);
      if (s && t.close) await t.close(s.repo).catch(() => undefined);
    }
    for (const p of removeLater) fs.rmSync(p, { recursive: true, force: true });
  }
}

type BackupRunLike = RunResult & { reported_sent: number | null };

/** The kept repository's keepd report, with the initial-backup phases (and any problems) of the repeats' servers. */
function mergeServers(main: ServerReport, extra: ServerReport[]): ServerReport {
  if (!extra.length) return main;
  const peaks = [main.peak_rss_kib, ...extra.map((e) => e.peak_rss_kib)].filter((x): x is number => x !== null);
  return {
    ...main,
    peak_rss_kib: peaks.length ? Math.max(...peaks) : null,
    phases: [...extra.flatMap((e) => e.phases.filter((p) => p.phase !== 'init')), ...main.phases],
    problems: [...main.problems, ...extra.flatMap((e) => e.problems)],
  };
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
    const { list, skipped } = tools(scratch, opts.peers, opts.grpc);
    for (const s of skipped) opts.log(`e2e: ${s}`);
    let mutation: MutationSummary | undefined;
    const results = await runScenario(
      {
        name: `generated ${opts.mode}`,
        source: data,
        scratch,
        input_bytes: summary.bytes,
        src1: manifest(data),
        first: 'gen1',
        again: 'gen1-again',
        mutate: () => {
          mutation = mutate(ds);
          opts.log(
            `e2e: generation 2: ${fmtBytes(mutation.changed_bytes)} changed (${fmtNum(mutation.changed_fraction * 100)}%), ${mutation.files_modified} modified, ${mutation.files_added} added, ${mutation.files_deleted} deleted`,
          );
          const src2 = manifest(data);
          if (src2.bytes !== mutation.bytes_after) throw new Error(`generator bookkeeping: tree holds ${src2.bytes} bytes, expected ${mutation.bytes_after}`);
          return { src2, label: 'gen2' };
        },
      },
      list,
      opts,
    );
    return { name: `generated ${opts.mode}`, input_bytes: summary.bytes, input_files: summary.files, dataset: summary, mutation, repeat: opts.repeat, tools: results, skipped };
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
    const { list, skipped } = tools(scratch, opts.peers, opts.grpc);
    const results = await runScenario({ name: `dir ${source}`, source, scratch, input_bytes: src.bytes, src1: src, first: 'run1', again: 'run2' }, list, opts);
    return { name: `dir ${source}`, input_bytes: src.bytes, input_files: src.fileCount, repeat: opts.repeat, tools: results, skipped };
  } finally {
    removeTemp(scratch);
  }
}

export async function runE2E(opts: E2EOptions): Promise<E2EResult> {
  const scenarios: ScenarioResult[] = [await generated(opts)];
  for (const d of opts.dirs) scenarios.push(await directory(d, opts));
  const failures: string[] = [];
  for (const s of scenarios)
    for (const t of s.tools) {
      if (!t.restore.verified) failures.push(`${s.name}: ${t.tool} restore differs from the source: ${t.restore.problems.join('; ')}`);
      for (const p of t.server?.problems ?? []) failures.push(`${s.name}: ${p}`);
    }
  return { rss_method: detectRssMethod(), scenarios, failures };
}

// ---- presentation --------------------------------------------------------------

export interface Figure {
  label: string;
  better: 'higher' | 'lower' | '';
  get: (t: ToolResult) => number | null | undefined;
  fmt: (n: number) => string;
}

export const f1 = (n: number) => fmtNum(n, 1);
export const f2 = (n: number) => fmtNum(n, 2);
const f3 = (n: number) => fmtNum(n, 3);
export const mb = (n: number) => fmtNum(n / 1e6, 1);

export function figures(s: ScenarioResult): Figure[] {
  const out: Figure[] = [
    { label: 'init (s)', better: 'lower', get: (t) => t.init_s, fmt: f2 },
    { label: 'initial backup (s)', better: 'lower', get: (t) => t.backup1.wall_s, fmt: f2 },
    { label: 'initial backup MB/s (input / wall)', better: 'higher', get: (t) => t.backup1.mb_s, fmt: f1 },
    { label: 'initial backup peak RSS (MiB)', better: 'lower', get: (t) => t.backup1.peak_rss_mib, fmt: f1 },
    { label: 'initial bytes sent, reported (MB)', better: 'lower', get: (t) => t.backup1.reported_sent, fmt: mb },
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
      { label: 'gen-2 backup peak RSS (MiB)', better: 'lower', get: (t) => t.backup2?.peak_rss_mib, fmt: f1 },
      { label: 'gen-2 bytes sent, reported (MB)', better: 'lower', get: (t) => t.backup2?.reported_sent, fmt: mb },
      { label: 'gen-2 repository growth (MB, packs)', better: 'lower', get: (t) => t.backup2?.growth, fmt: mb },
      { label: 'stored after gen 2 (MB, packs)', better: 'lower', get: (t) => t.stored2, fmt: mb },
      { label: 'repository dir after gen 2 (MB)', better: 'lower', get: (t) => t.repo2, fmt: mb },
    );
  }
  out.push(
    { label: `restore (s)${s.mutation ? ', gen 2' : ''}`, better: 'lower', get: (t) => t.restore.wall_s, fmt: f2 },
    { label: 'restore MB/s', better: 'higher', get: (t) => t.restore.mb_s, fmt: f1 },
    { label: 'restore peak RSS (MiB)', better: 'lower', get: (t) => t.restore.peak_rss_mib, fmt: f1 },
  );
  return out;
}

/**
 * Rows of [figure, better, value per tool..., subject/other ratio per other tool...],
 * `subject` first. Tools not in `columns` are left out.
 */
export function comparisonRows(s: ScenarioResult, subject: string, columns: string[], figs: Figure[]): { header: string[]; rows: string[][] } {
  const shown = [subject, ...columns].map((n) => s.tools.find((t) => t.tool === n)).filter((t): t is ToolResult => t !== undefined);
  const main = shown[0];
  const others = shown.slice(1);
  const header = ['figure', 'better', ...shown.map((t) => t.tool), ...others.map((p) => `${subject}/${p.tool}`)];
  const rows = figs.map((f) => {
    const vals = shown.map((t) => f.get(t));
    const k = f.get(main);
    const ratios = others.map((p) => {
      const v = f.get(p);
      return k !== null && k !== undefined && v !== null && v !== undefined && v !== 0 && Number.isFinite(k) && Number.isFinite(v) ? `${fmtNum(k / v, 2)}x` : '-';
    });
    return [f.label, f.better, ...vals.map((v) => (v === null || v === undefined || !Number.isFinite(v) ? '-' : f.fmt(v))), ...ratios];
  });
  rows.push(['restore byte-identical', '', ...shown.map((t) => (t.restore.verified ? 'yes' : 'NO')), ...others.map(() => '')]);
  return { header, rows };
}

/** The local-repository table: keep (embedded repository) against restic and borg. */
export function scenarioRows(s: ScenarioResult): { header: string[]; rows: string[][] } {
  return comparisonRows(s, 'keep', ['restic', 'borg'], figures(s));
}

export function scenarioTitle(s: ScenarioResult, prefix = 'End-to-end, local repository'): string {
  const parts = [`${prefix}: ${s.name} — ${fmtBytes(s.input_bytes)} (${fmtNum(s.input_bytes / MiB, 1)} MiB) in ${s.input_files} files`];
  if (s.dataset) {
    const d = s.dataset;
    parts.push(
      `  dataset: ${d.small_files} small files (${fmtBytes(d.small_bytes)}), ${d.large_files} large (${fmtBytes(d.large_bytes)}); text-like ${fmtBytes(d.text_bytes)}, random ${fmtBytes(d.random_bytes)}`,
    );
  }
  if (s.repeat > 1) parts.push(`  initial backup, unchanged re-backup and restore: ${s.repeat} runs per tool, interleaved across tools; median wall time and CPU, largest peak RSS`);
  if (s.mutation) {
    const m = s.mutation;
    parts.push(
      `  generation 2: ${fmtBytes(m.changed_bytes)} changed (${fmtNum(m.changed_fraction * 100)}% of generation 1): ${m.files_modified} files modified, ${m.files_added} added, ${m.files_deleted} deleted -> ${fmtBytes(m.bytes_after)}`,
    );
  }
  return parts.join('\n');
}
