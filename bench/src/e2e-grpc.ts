import { comparisonRows, f1, f2, Figure, figures, mb, ScenarioResult, ToolResult } from './e2e-local.js';
import { fmtNum } from './util.js';

/**
 * Presentation of the gRPC runs (issue 3): keep-grpc is the keep agent backing
 * up to, and restoring from, a real keepd on loopback; it ran on the very same
 * data, in the same scenario, as the local keep, restic and borg (e2e-local.ts
 * drives all four), so the columns compare like with like.
 */

const MiBf = (kib: number | null | undefined) => (kib === null || kib === undefined ? null : kib / 1024);
/** keepd's readings for a step (a step repeated N times has N phases: name, or name-1, name-2...): largest peak, median CPU, summed counters / N. */
function serverPhase(t: ToolResult, name: string): { peak_rss_kib: number | null; cpu_s: number | null; metrics: Record<string, number> | null } | undefined {
  const ps = t.server?.phases.filter((p) => p.phase === name || (p.phase.startsWith(`${name}-`) && /^\d+$/.test(p.phase.slice(name.length + 1)))) ?? [];
  if (!ps.length) return undefined;
  const peaks = ps.map((p) => p.peak_rss_kib).filter((x): x is number => x !== null);
  const cpus = ps
    .map((p) => p.cpu_s)
    .filter((x): x is number => x !== null)
    .sort((a, b) => a - b);
  const mid = Math.floor(cpus.length / 2);
  const ms = ps.map((p) => p.metrics).filter((m): m is Record<string, number> => m !== null);
  const metrics = ms.length ? Object.fromEntries(Object.keys(ms[0]).map((k) => [k, ms.reduce((a, m) => a + (m[k] ?? 0), 0) / ms.length])) : null;
  return {
    peak_rss_kib: peaks.length ? Math.max(...peaks) : null,
    cpu_s: cpus.length ? (cpus.length % 2 ? cpus[mid] : (cpus[mid - 1] + cpus[mid]) / 2) : null,
    metrics,
  };
}

/** The largest peak RSS of the agent over its commands (init excluded: it only derives a key). */
export function agentPeakMiB(t: ToolResult): number | null {
  const v = [t.backup1.peak_rss_mib, t.rebackup.peak_rss_mib, t.backup2?.peak_rss_mib, t.restore.peak_rss_mib].filter((x): x is number => typeof x === 'number');
  return v.length ? Math.max(...v) : null;
}

export function grpcFigures(s: ScenarioResult): Figure[] {
  const gen1 = s.mutation ? 'gen1' : 'run1';
  const again = s.mutation ? 'gen1-again' : 'run2';
  const extra: Figure[] = [
    { label: 'agent peak RSS, any command (MiB)', better: 'lower', get: agentPeakMiB, fmt: f1 },
    { label: 'keepd peak RSS, initial backup (MiB)', better: 'lower', get: (t) => MiBf(serverPhase(t, gen1)?.peak_rss_kib), fmt: f1 },
    { label: 'keepd peak RSS, unchanged re-backup (MiB)', better: 'lower', get: (t) => MiBf(serverPhase(t, again)?.peak_rss_kib), fmt: f1 },
  ];
  if (s.mutation) extra.push({ label: 'keepd peak RSS, gen-2 backup (MiB)', better: 'lower', get: (t) => MiBf(serverPhase(t, 'gen2')?.peak_rss_kib), fmt: f1 });
  extra.push(
    { label: 'keepd peak RSS, restore (MiB)', better: 'lower', get: (t) => MiBf(serverPhase(t, 'restore')?.peak_rss_kib), fmt: f1 },
    { label: 'keepd peak RSS, whole run (MiB)', better: 'lower', get: (t) => MiBf(t.server?.peak_rss_kib), fmt: f1 },
    { label: 'peak RSS agent + keepd (peers: the one process), initial backup (MiB)', better: 'lower', get: (t) => sum(t.backup1.peak_rss_mib, t.server ? MiBf(serverPhase(t, gen1)?.peak_rss_kib) : 0), fmt: f1 },
    { label: 'initial backup CPU s, agent', better: 'lower', get: (t) => t.backup1.cpu_s, fmt: f2 },
    { label: 'initial backup CPU s, keepd', better: 'lower', get: (t) => serverPhase(t, gen1)?.cpu_s, fmt: f2 },
    { label: 'initial: keepd counted bytes stored (MB)', better: 'lower', get: (t) => serverPhase(t, gen1)?.metrics?.keep_bytes_stored_total, fmt: mb },
  );
  if (s.mutation) extra.push({ label: 'gen 2: keepd counted bytes stored (MB)', better: 'lower', get: (t) => serverPhase(t, 'gen2')?.metrics?.keep_bytes_stored_total, fmt: mb });
  extra.push(
    { label: 'restore CPU s, agent', better: 'lower', get: (t) => t.restore.cpu_s, fmt: f2 },
    { label: 'restore CPU s, keepd', better: 'lower', get: (t) => serverPhase(t, 'restore')?.cpu_s, fmt: f2 },
    { label: 'restore: keepd counted bytes served (MB)', better: '', get: (t) => serverPhase(t, 'restore')?.metrics?.keep_bytes_served_total, fmt: mb },
  );
  return [...figures(s).filter((f) => f.label !== 'init (s)'), ...extra];
}

function sum(a: number | null | undefined, b: number | null | undefined): number | null {
  return a === null || a === undefined || b === null || b === undefined ? null : a + b;
}

export function grpcRows(s: ScenarioResult): { header: string[]; rows: string[][] } {
  return comparisonRows(s, 'keep-grpc', ['restic', 'borg', 'keep'], grpcFigures(s));
}

export const grpcTitlePrefix = 'End-to-end over gRPC (keepd on loopback)';

// ---- issue 3's targets -------------------------------------------------------------

export interface Target {
  name: string;
  rule: string;
  keep: number | null;
  restic: number | null;
  /** keep/restic, or keep/limit for absolute targets */
  ratio: number | null;
  pass: boolean | null;
  unit: string;
  note: string;
}

export const AGENT_RSS_LIMIT_BYTES = 150e6;

/** The targets, computed from the measurements of keep-grpc and restic in one scenario. */
export function grpcTargets(s: ScenarioResult): Target[] {
  const k = s.tools.find((t) => t.tool === 'keep-grpc');
  if (!k) return [];
  const r = s.tools.find((t) => t.tool === 'restic');
  const rel = (name: string, rule: string, unit: string, kv: number | null | undefined, rv: number | null | undefined, ok: (ratio: number) => boolean, note = ''): Target => {
    const keep = kv ?? null;
    const restic = r ? (rv ?? null) : null;
    const ratio = keep !== null && restic !== null && restic !== 0 ? keep / restic : null;
    return { name, rule, keep, restic, ratio, pass: ratio === null ? null : ok(ratio), unit, note: r ? note : `restic not installed: no comparison${note ? `; ${note}` : ''}` };
  };
  const repoK = k.repo2 ?? k.repo1;
  const repoR = r ? (r.repo2 ?? r.repo1) : null;
  const packsK = k.stored2 ?? k.stored1;
  const packsR = r ? (r.stored2 ?? r.stored1) : null;
  const agent = agentPeakMiB(k);
  const agentBytes = agent === null ? null : agent * 1024 * 1024;
  return [
    rel('initial backup throughput', '>= 2x restic', 'MB/s', k.backup1.mb_s, r?.backup1.mb_s, (x) => x >= 2),
    rel('unchanged re-backup time', '<= 0.5x restic', 's', k.rebackup.wall_s, r?.rebackup.wall_s, (x) => x <= 0.5),
    rel(`restore throughput${s.mutation ? ' (gen 2)' : ''}`, '>= 2x restic', 'MB/s', k.restore.mb_s, r?.restore.mb_s, (x) => x >= 2),
    rel(
      `repository size${s.mutation ? ' after gen 2' : ''} (whole directory)`,
      '<= restic',
      'MB',
      repoK,
      repoR,
      (x) => x <= 1,
      packsR !== null && packsK !== undefined ? `packs alone: ${fmtNum(packsK / 1e6, 1)} vs ${fmtNum((packsR ?? 0) / 1e6, 1)} MB (${fmtNum(packsK / (packsR ?? NaN), 2)}x)` : '',
    ),
    {
      name: 'agent peak RSS (largest of backup, re-backup, gen-2 backup, restore)',
      rule: '< 150 MB (143.1 MiB)',
      keep: agent,
      restic: null,
      ratio: agentBytes === null ? null : agentBytes / AGENT_RSS_LIMIT_BYTES,
      pass: agentBytes === null ? null : agentBytes < AGENT_RSS_LIMIT_BYTES,
      unit: 'MiB',
      note: `ratio column: peak / limit${r ? `; restic's largest: ${fmtNum(agentPeakMiB(r), 1)} MiB` : ''}`,
    },
  ];
}

export function targetRows(ts: Target[]): { header: string[]; rows: string[][] } {
  const v = (t: Target, x: number | null) => (x === null ? '-' : t.unit === 'MB' ? fmtNum(x / 1e6, 1) : fmtNum(x, t.unit === 's' ? 2 : 1));
  return {
    header: ['issue-3 target', 'rule', 'keep-grpc', 'restic', 'ratio', 'result', 'note'],
    rows: ts.map((t) => [
      `${t.name} (${t.unit})`,
      t.rule,
      v(t, t.keep),
      v(t, t.restic),
      t.ratio === null ? '-' : `${fmtNum(t.ratio, 2)}x`,
      t.pass === null ? 'n/a' : t.pass ? 'PASS' : 'FAIL',
      t.note,
    ]),
  };
}
