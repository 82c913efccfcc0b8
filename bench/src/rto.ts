import { TIERS } from '@keep/core';
import type { DrillFigures } from './drill.js';
import type { E2EResult, ScenarioResult } from './e2e-local.js';
import { fmtBytes, fmtNum } from './util.js';

/**
 * Issue 4: restore-time estimates against each tier's RTO, from the restore
 * throughput measured over gRPC on the generated data set. Nothing here is
 * measured except that throughput (and, for the generated set and each
 * --dir, the restore itself): every other row is arithmetic, and says so.
 */

export interface RtoRow {
  source: string;
  bytes: number;
  /** 'measured' = an actual restore of this source; 'estimate' = bytes / basis throughput */
  kind: 'measured' | 'estimate';
  mb_s: number;
  restore_s: number;
  /** tier -> restore_s <= rto_s */
  meets: Record<string, boolean>;
}

export interface RtoResult {
  basis: { tool: string; scenario: string; bytes: number; mb_s: number; restore_s: number } | null;
  tiers: { tier: string; rto_s: number; max_bytes: number }[];
  rows: RtoRow[];
  assumptions: string[];
  unavailable?: string;
  /** issue 18: what `keep drill` measured on the kept repository, beside the estimate for the same bytes */
  drills: RtoDrillRow[];
}

export interface RtoDrillRow {
  scenario: string;
  drill: DrillFigures;
  /** this bench's estimate for the drilled bytes (bytes / the basis throughput) */
  bench_estimate_s: number | null;
}

const EXAMPLES: [string, number][] = [
  ['example 10 GB', 10e9],
  ['example 100 GB', 100e9],
  ['example 1 TB', 1e12],
];

export function rtoEstimates(e2e: E2EResult | undefined): RtoResult {
  const tierList = Object.entries(TIERS).map(([tier, t]) => ({ tier, rto_s: t.rto_s }));
  const gen = e2e?.scenarios.find((s) => s.dataset);
  // gRPC first (the deployment RTOs are about); the local figure only when gRPC was skipped, and labelled
  const pick = (s: ScenarioResult | undefined) => s?.tools.find((t) => t.tool === 'keep-grpc') ?? s?.tools.find((t) => t.tool === 'keep');
  const basisTool = pick(gen);
  const assumptions = [
    'restore throughput is the one measured here over gRPC on loopback (keepd and the agent on this machine), whole process wall time included',
    'restore time scales linearly with the size of the source (same data mix: ~half text-like, ~half incompressible, 20% of bytes in small files)',
    'the restoring machine is of the same class as this one (cores, CPU, memory) and runs nothing else heavy',
    'the network is not the bottleneck (loopback here; a real link must carry at least the throughput shown, after compression)',
    'storage is not the bottleneck: the benchmark restores from packs in the page cache into the page cache; a 1 TB restore is read from and written to real disks, whose speed may cap it',
    'process start-up, key derivation and index open (a fixed cost per restore) are folded into the measured throughput, which makes the estimates for large sources slightly pessimistic',
  ];
  if (!gen || !basisTool || !(basisTool.restore.mb_s > 0)) {
    return { basis: null, tiers: tierList.map((t) => ({ ...t, max_bytes: NaN })), rows: [], assumptions, unavailable: 'no restore throughput measured (end-to-end skipped)', drills: drillRows(e2e, undefined) };
  }
  if (basisTool.tool !== 'keep-grpc') assumptions.unshift('gRPC was skipped (--no-grpc): the basis is the LOCAL-repository restore throughput, not a keepd one');
  const mbs = basisTool.restore.mb_s;
  const meets = (sec: number) => Object.fromEntries(tierList.map((t) => [t.tier, sec <= t.rto_s]));
  const estimate = (source: string, bytes: number): RtoRow => {
    const sec = bytes / (mbs * 1e6);
    return { source, bytes, kind: 'estimate', mb_s: mbs, restore_s: sec, meets: meets(sec) };
  };
  const rows: RtoRow[] = EXAMPLES.map(([n, b]) => estimate(n, b));
  for (const s of e2e!.scenarios) {
    const t = pick(s);
    if (!t) continue;
    rows.push({ source: `${s.name} (measured)`, bytes: t.restore.bytes, kind: 'measured', mb_s: t.restore.mb_s, restore_s: t.restore.wall_s, meets: meets(t.restore.wall_s) });
  }
  return {
    basis: { tool: basisTool.tool, scenario: gen.name, bytes: basisTool.restore.bytes, mb_s: mbs, restore_s: basisTool.restore.wall_s },
    tiers: tierList.map((t) => ({ ...t, max_bytes: mbs * 1e6 * t.rto_s })),
    rows,
    assumptions,
    drills: drillRows(e2e, mbs),
  };
}

function drillRows(e2e: E2EResult | undefined, mbs: number | undefined): RtoDrillRow[] {
  const out: RtoDrillRow[] = [];
  for (const s of e2e?.scenarios ?? [])
    for (const t of s.tools) if (t.drill) out.push({ scenario: s.name, drill: t.drill, bench_estimate_s: mbs ? t.drill.bytes / (mbs * 1e6) : null });
  return out;
}

/** Measured by keep drill (and keepd's estimate from it) beside this bench's estimate for the same bytes. */
export function rtoDrillTable(r: RtoResult): { header: string[]; rows: string[][] } {
  return {
    header: ['scenario', 'drill', 'bytes', 'drill time', 'start-up', 'MB/s', "keepd's RTO estimate", 'bench estimate'],
    rows: r.drills.map((x) => [
      x.scenario,
      `${x.drill.result} (${x.drill.mode})`,
      fmtBytes(x.drill.bytes),
      fmtDuration(x.drill.duration_s),
      fmtDuration(x.drill.setup_s),
      fmtNum(x.drill.mb_s, 1),
      x.drill.keepd_rto_estimate_s === null ? '-' : fmtDuration(x.drill.keepd_rto_estimate_s),
      x.bench_estimate_s === null ? '-' : fmtDuration(x.bench_estimate_s),
    ]),
  };
}

export const RTO_DRILL_TITLE = "Measured RTO (issue 18): keep drill of the kept repository's newest snapshot over gRPC (restored to scratch, every file read back and checked), keepd's RTO estimate from it, and this bench's estimate for the same bytes";

export function fmtDuration(s: number): string {
  if (!Number.isFinite(s)) return '-';
  if (s < 60) return `${fmtNum(s, 1)} s`;
  if (s < 3600) return `${fmtNum(s / 60, 1)} min`;
  if (s < 48 * 3600) return `${fmtNum(s / 3600, 1)} h`;
  return `${fmtNum(s / 86400, 1)} d`;
}

const tierHead = (tier: string, rto: number) => `${tier} (RTO ${fmtDuration(rto).replace('.0 ', ' ')})`;

export function rtoRows(r: RtoResult): { header: string[]; rows: string[][] } {
  const header = ['source', 'size', 'basis', 'MB/s', 'restore time', ...r.tiers.map((t) => tierHead(t.tier, t.rto_s))];
  const rows = r.rows.map((x) => [
    x.source,
    x.bytes >= 1e12 ? `${fmtNum(x.bytes / 1e12, 1)} TB` : x.bytes >= 1e9 ? `${fmtNum(x.bytes / 1e9, 1)} GB` : fmtBytes(x.bytes),
    x.kind,
    fmtNum(x.mb_s, 1),
    fmtDuration(x.restore_s),
    ...r.tiers.map((t) => (x.meets[t.tier] ? 'meets' : 'MISSES')),
  ]);
  return { header, rows };
}

export function rtoTierRows(r: RtoResult): { header: string[]; rows: string[][] } {
  return {
    header: ['tier', 'RTO', 'largest source restorable within the RTO at the measured rate'],
    rows: r.tiers.map((t) => [t.tier, fmtDuration(t.rto_s), Number.isFinite(t.max_bytes) ? `${fmtNum(t.max_bytes / 1e9, 1)} GB` : '-']),
  };
}

export function rtoTitle(r: RtoResult): string {
  if (!r.basis) return `RTO estimates (issue 4): ${r.unavailable}`;
  return `RTO estimates (issue 4) — basis: ${r.basis.tool} restore of ${r.basis.scenario}, ${fmtBytes(r.basis.bytes)} in ${fmtNum(r.basis.restore_s, 2)} s = ${fmtNum(r.basis.mb_s, 1)} MB/s`;
}
