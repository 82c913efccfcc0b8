import type { CheckReport } from './check.js';
import type { PruneReport } from './gc/prune.js';
import type { PitrWindow } from './snapshot/pg.js';
import { groupLabel, type ForgetResult } from './snapshot/forget.js';

/*
 * The text keepd's reports print as, for people: `keepd status|alerts|check|
 * forget|prune|token list|audit list` on the server's shell and `keep admin
 * ...` over gRPC print the same lines from the same JSON (--json prints the
 * JSON itself). Each function returns the lines, joined, or '' for none.
 */

/** One source in `keepd status --json`. */
export interface SourceStatus {
  source: string;
  host: string;
  snapshots: number;
  last_snapshot: string;
  last_time: string;
  age_s: number;
  tier: string | null;
  /** the tier's RPO; null when the source has no tier */
  rpo_s: number | null;
  /** 'ok' | 'late' (older than its RPO) | 'unknown' (no tier) */
  rpo_state: 'ok' | 'late' | 'unknown';
  /** PostgreSQL sources: the point-in-time recovery window (oldest base backup .. newest WAL push) */
  pitr?: PitrWindow;
}

/** Per source, from agents' run reports (ReportRuns); times are keepd's receive times. */
export interface SourceRuns {
  source: string;
  last_result: 'success' | 'failure';
  last_job: string;
  last_run: string;
  consecutive_failures: number;
  last_failure: string | null;
  last_success: string | null;
  last_error_class: string | null;
  runs_success: number;
  runs_failure: number;
}

/** `keepd status --check`'s verdict: monitoring-plugin status, exit code and one line. */
export interface StatusCheck {
  status: 'OK' | 'WARNING' | 'CRITICAL' | 'UNKNOWN';
  code: number;
  line: string;
}

/** What the human form of `keepd status` shows of a source's drills. */
export interface DrillLine {
  source: string;
  state: string | null;
  last_drill: string | null;
  last_result: 'success' | 'failure' | null;
  last_mode: string | null;
  last_error_class: string | null;
  drill_s: number | null;
  rto_estimate_s: number | null;
  rto_target_s: number | null;
}

/** What the human form of `keepd status` shows of its JSON. */
export interface StatusView {
  repository: string;
  snapshots: number;
  blobs: number;
  packs: number;
  sources: SourceStatus[];
  runs: SourceRuns[];
  /** restore drills per source (server/src/control/drill-status.ts); absent from older keepds' JSON */
  drills?: DrillLine[];
  watchdog: { check: StatusCheck; states: { kind: string; name: string; state: string; since: string }[] };
}

export function formatStatus(s: StatusView): string {
  const lines = [`repository ${s.repository}: ${s.snapshots} snapshots, ${s.blobs} blobs in ${s.packs} packs`];
  for (const x of s.sources) {
    lines.push(`${x.source.padEnd(20)} ${x.last_snapshot.slice(0, 8)} ${x.last_time}  age ${x.age_s}s  tier ${x.tier ?? '-'}  RPO ${x.rpo_state}`);
    if (x.pitr) lines.push(`${''.padEnd(20)} PITR ${x.pitr.from ?? '-'} .. ${x.pitr.to ?? '-'}  (${x.pitr.base_backups} base backups, ${x.pitr.wal_files} WAL files${x.pitr.gaps.length ? `, ${x.pitr.gaps.reduce((n, g) => n + g.count, 0)} segment(s) missing` : ''})`);
  }
  if (s.runs.length) lines.push('agent runs (as reported; keepd times):');
  for (const r of s.runs) {
    const failing = r.consecutive_failures ? `  ${r.consecutive_failures} consecutive failure(s), last ${r.last_failure} (${r.last_error_class ?? '-'})` : '';
    lines.push(`${r.source.padEnd(20)} last ${r.last_result} ${r.last_run} (job ${r.last_job})${failing}  ${r.runs_success} ok / ${r.runs_failure} failed`);
  }
  const drills = s.drills ?? [];
  if (drills.length) lines.push('restore drills (keepd times; RTO estimate = start-up + latest snapshot size at the measured rate):');
  for (const d of drills) {
    const rto = d.rto_estimate_s === null ? 'no estimate' : `RTO estimate ${d.rto_estimate_s}s${d.rto_target_s === null ? '' : ` (target ${d.rto_target_s}s)`}`;
    lines.push(`${d.source.padEnd(20)} last ${d.last_result ?? '-'} ${d.last_drill ?? '-'} (${d.last_mode ?? '-'}, ${d.drill_s ?? '-'}s${d.last_error_class ? `, ${d.last_error_class}` : ''})  ${rto}  ${d.state ?? ''}`);
  }
  lines.push(`watchdog: ${s.watchdog.check.line}`);
  for (const w of s.watchdog.states) lines.push(`  ${w.kind.padEnd(11)} ${w.name.padEnd(20)} ${w.state.padEnd(8)} since ${w.since}`);
  return lines.join('\n');
}

/** What the human form of `keepd alerts` shows of its JSON. */
export interface AlertsView {
  active: AlertView[];
  recent: AlertView[];
}

interface AlertView {
  id: string;
  condition: string;
  state: string;
  started: string;
  resolved: string | null;
  deliveries: { receiver: string; idempotency_key: string; delivery: string; attempts: number; next_attempt: string | null; last_error: string | null }[];
}

export function formatAlerts(r: AlertsView): string {
  const lines = r.active.length ? [] : ['no active alerts'];
  for (const x of [...r.active, ...r.recent]) {
    lines.push(`${x.state.padEnd(8)} ${x.id.padEnd(28)} ${x.condition.padEnd(8)} since ${x.started}${x.resolved ? `  resolved ${x.resolved}` : ''}`);
    for (const d of x.deliveries) lines.push(`  ${d.receiver.padEnd(16)} ${d.idempotency_key.padEnd(32)} ${d.delivery}${d.delivery === 'pending' ? ` (${d.attempts} attempt(s), next ${d.next_attempt}${d.last_error ? `, ${d.last_error}` : ''})` : ''}`);
  }
  return lines.join('\n');
}

/** `keepd check`: the keyless check's counts and each problem. */
export function formatKeepdCheck(r: CheckReport): string {
  const lines = [`checked ${r.snapshots} snapshots, ${r.packs} packs, ${r.blobs} blobs; read ${r.blobs_read} blobs (${r.bytes_read} bytes)`];
  for (const e of r.errors) lines.push(`error: ${e}`);
  if (r.orphan_packs.length) lines.push(`${r.orphan_packs.length} pack(s) not in the index (prune removes them)`);
  if (r.unfinished_packs) lines.push(`${r.unfinished_packs} unfinished pack(s) in tmp/ (left by an interrupted write)`);
  return lines.join('\n');
}

/** `keepd forget [--prune]`: each group's verdicts, the sources left alone, what prune freed. */
export function formatKeepdForget(r: ForgetResult & { prune?: PruneReport }, dryRun: boolean): string {
  const lines: string[] = [];
  for (const g of r.groups) {
    lines.push(`${g.source !== undefined ? 'source ' : ''}${groupLabel(g.key)}: ${g.policy}`);
    for (const s of g.snapshots) lines.push(`  ${s.keep ? 'keep  ' : 'remove'} ${s.id.slice(0, 8)} ${s.time}  ${s.reasons.join(', ')}`);
    lines.push(`  ${dryRun ? 'would remove' : 'removed'} ${g.removed.length} snapshot(s)`);
    if (g.wal) lines.push(`  WAL: ${dryRun ? 'would remove' : 'removed'} ${g.wal.removed.length} of ${g.wal.files} file(s)${g.wal.cutoffs.length ? ` older than ${g.wal.cutoffs.map((c) => c.start_wal).join(', ')}` : ''}${g.wal.note ? ` (${g.wal.note})` : ''}`);
  }
  for (const s of r.skipped) lines.push(`${s}: no policy (give --keep-* flags or --tier, or back it up with --tier); left alone`);
  if (r.prune) lines.push(`prune: removed ${r.prune.blobs_removed} blobs, ${r.prune.bytes_before - r.prune.bytes_after} bytes freed`);
  return lines.join('\n');
}

export function formatPrune(r: PruneReport): string {
  return (
    `${r.dry_run ? 'would remove' : 'removed'} ${r.blobs_removed} of ${r.blobs_before} blobs (${r.bytes_removed} bytes); ${r.blobs_kept_recent} unreferenced but recent kept; ` +
    `${r.packs_deleted} packs deleted, ${r.packs_repacked} repacked; ${r.bytes_before} -> ${r.bytes_after} bytes in ${r.duration_s.toFixed(2)} s` +
    (r.packs_pending_deletion || r.delayed_packs_deleted ? `; ${r.delayed_packs_deleted} packs of earlier prunes deleted, ${r.packs_pending_deletion} waiting out the deletion delay` : '')
  );
}

/** A token as `keepd token list` shows it: its grants, never its hash or secret. */
export interface TokenView {
  id: string;
  role: string;
  sources: string[];
  dedup: string;
  created: number;
  revoked?: boolean;
}

export function formatTokens(rows: TokenView[]): string {
  return rows.map((r) => `${r.id}  ${r.role.padEnd(7)}  ${r.sources.join(',') || '*'}  dedup=${r.dedup}${r.revoked ? '  revoked' : ''}`).join('\n');
}

/** An audit record as `keepd audit list` shows it: seq, time, event, who, source, fields. */
export interface AuditView {
  seq: number;
  /** keepd's clock, RFC 3339 UTC */
  time: string;
  event: string;
  /** the token's id (never the token) or null for the server's own shell */
  token: string | null;
  /** the caller's address without its port ("local" for keepd's own commands) */
  peer: string | null;
  source: string | null;
  /** counts, flags, ids and short names */
  fields: Record<string, number | boolean | string | string[]>;
}

export function formatAuditRecord(r: AuditView): string {
  const fields = Object.entries(r.fields).map(([k, v]) => `${k}=${Array.isArray(v) ? v.join(',') : v}`);
  return [String(r.seq).padStart(6), r.time, r.event.padEnd(16), `token=${r.token ?? '-'}`, `peer=${r.peer ?? '-'}`, `source=${r.source ?? '-'}`, ...fields].join('  ');
}
