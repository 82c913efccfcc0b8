import { KeepError } from '../errors.js';

/**
 * One run of one agent job as the agent reports it to keepd (ReportRuns).
 * Everything here is plaintext keepd may read: labels, counts, times and a
 * coarse error class. The error text and warnings can name files, so they
 * travel only sealed (run-detail.ts).
 */
export interface RunReport {
  /** 32 hex digits chosen by the agent: a report delivered twice is kept once */
  id: string;
  source: string;
  job: string;
  kind: RunKind;
  reason: string;
  attempt: number;
  /** the agent's clock, ms since the epoch */
  start_ms: number;
  end_ms: number;
  result: 'success' | 'failure';
  files: number;
  bytes: number;
  snapshot?: string;
  /** failures: the KeepError code or "exit N"; never text */
  error_class?: string;
  warnings: number;
  /** base64 AES-256-GCM of {error, warnings} (run-detail.ts); keepd has no key */
  sealed_detail?: string;
}

export const RUN_KINDS = ['files', 'command', 'postgres'] as const;
export type RunKind = (typeof RUN_KINDS)[number];

/** The most reports one ReportRuns call carries. */
export const MAX_REPORTS_PER_CALL = 1000;
/** Largest sealed detail accepted (base64): room for an error and a page of warnings. */
export const MAX_SEALED_DETAIL = 64 * 1024;

const LABEL = /^[\w.@:+-]{1,128}$/;
const ERROR_CLASS = /^(?:[A-Z][A-Z_]{0,63}|exit \d{1,3}|signal [A-Z0-9]{1,16})$/;

/** Refuse a report keepd would store wrongly or that could carry text other than labels. */
export function checkRunReport(r: RunReport): RunReport {
  const bad = (why: string) => new KeepError('INVALID_ARGUMENT', `run report ${r.id || '(no id)'}: ${why}`);
  if (!/^[0-9a-f]{32}$/.test(r.id)) throw bad('id must be 32 hex digits');
  if (!r.source) throw bad('no source');
  if (!LABEL.test(r.job)) throw bad('job must be a label (letters, digits, ._@:+-)');
  if (!(RUN_KINDS as readonly string[]).includes(r.kind)) throw bad(`kind must be one of ${RUN_KINDS.join(', ')}`);
  if (!LABEL.test(r.reason)) throw bad('reason must be a label');
  if (r.result !== 'success' && r.result !== 'failure') throw bad('result must be success or failure');
  if (!(r.attempt >= 1) || !(r.end_ms >= r.start_ms) || !(r.start_ms > 0)) throw bad('attempt or times out of range');
  if (r.snapshot !== undefined && !/^[0-9a-f]{16,64}$/.test(r.snapshot)) throw bad('snapshot must be a hex id');
  if (r.error_class !== undefined && !ERROR_CLASS.test(r.error_class)) throw bad('error_class must be an error code, "exit N" or "signal NAME"');
  if (r.sealed_detail !== undefined && (r.sealed_detail.length > MAX_SEALED_DETAIL || !/^[A-Za-z0-9+/]+={0,2}$/.test(r.sealed_detail))) throw bad('sealed_detail must be base64, at most 64 KiB');
  return r;
}
