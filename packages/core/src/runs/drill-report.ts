import { KeepError } from '../errors.js';

/**
 * One restore drill as the agent reports it to keepd (ReportDrills): what
 * was restored, how, whether everything verified, and how long it took.
 * Plaintext keepd may read: ids, counts, times and a coarse error class,
 * never a file name.
 */
export interface DrillReport {
  /** 32 hex digits chosen by the agent: a report delivered twice is kept once */
  id: string;
  source: string;
  snapshot: string;
  /** what was drilled: a files snapshot; 'postgres' is the seam for PostgreSQL drills (base backup + WAL, validated) */
  kind: DrillKind;
  /** 'write': restored into a scratch directory and read back; 'read': fetched, decrypted and checked, nothing written */
  mode: DrillMode;
  result: 'success' | 'failure';
  /** the agent's clock, ms since the epoch (keepd records its own receive time) */
  start_ms: number;
  end_ms: number;
  /** measured wall time of the whole drill (monotonic), ms; setup_ms of it before the first byte was asked for (connect, unlock, snapshot choice) */
  duration_ms: number;
  setup_ms: number;
  files: number;
  bytes: number;
  /** files whose size, content and metadata were checked against the snapshot, and those that differed */
  files_verified: number;
  verify_failures: number;
  /** failures: the KeepError code; never text */
  error_class?: string;
  /** PostgreSQL drills (kind 'postgres'): ms from the drill's start until the restored server was consistent and until it was promoted */
  consistent_ms?: number;
  promoted_ms?: number;
  /** PostgreSQL drills: the recovery target actually reached (the last replayed commit, ms since the epoch) */
  recovered_to_ms?: number;
}

export const DRILL_KINDS = ['files', 'postgres'] as const;
export type DrillKind = (typeof DRILL_KINDS)[number];
export const DRILL_MODES = ['write', 'read'] as const;
export type DrillMode = (typeof DRILL_MODES)[number];

/** The most drill reports one ReportDrills call carries. */
export const MAX_DRILLS_PER_CALL = 100;

const ERROR_CLASS = /^(?:[A-Z][A-Z_]{0,63}|signal [A-Z0-9]{1,16})$/;

/** Refuse a report keepd would store wrongly or that could carry text. */
export function checkDrillReport(r: DrillReport): DrillReport {
  const bad = (why: string) => new KeepError('INVALID_ARGUMENT', `drill report ${r.id || '(no id)'}: ${why}`);
  if (!/^[0-9a-f]{32}$/.test(r.id)) throw bad('id must be 32 hex digits');
  if (!r.source) throw bad('no source');
  if (!/^[0-9a-f]{16,64}$/.test(r.snapshot)) throw bad('snapshot must be a hex id');
  if (!(DRILL_KINDS as readonly string[]).includes(r.kind)) throw bad(`kind must be one of ${DRILL_KINDS.join(', ')}`);
  if (!(DRILL_MODES as readonly string[]).includes(r.mode)) throw bad(`mode must be one of ${DRILL_MODES.join(', ')}`);
  if (r.result !== 'success' && r.result !== 'failure') throw bad('result must be success or failure');
  if (!(r.start_ms > 0) || !(r.end_ms >= r.start_ms)) throw bad('times out of range');
  for (const k of ['duration_ms', 'setup_ms', 'files', 'bytes', 'files_verified', 'verify_failures'] as const) if (!Number.isSafeInteger(r[k]) || r[k] < 0) throw bad(`${k} must be a count`);
  if (r.setup_ms > r.duration_ms) throw bad('setup_ms exceeds duration_ms');
  for (const k of ['consistent_ms', 'promoted_ms', 'recovered_to_ms'] as const) if (r[k] !== undefined && (!Number.isSafeInteger(r[k]) || r[k]! < 0)) throw bad(`${k} must be a count`);
  if (r.error_class !== undefined && !ERROR_CLASS.test(r.error_class)) throw bad('error_class must be an error code');
  return r;
}

/** Drill interval when a policy names none: weekly for the critical tier, monthly otherwise. */
export function defaultDrillIntervalMs(tier: string | undefined): number {
  return (tier === 'critical' ? 7 : 30) * 86_400_000;
}
