import { openJson, sealJson } from '../keys/sealed-json.js';
import type { RepoKeys } from '../keys/subkeys.js';

/**
 * What a run report holds that keepd must not read: the error text and the
 * warnings (both can name files). Sealed under keys.runDetailKey (HKDF label
 * keep/v1/run-detail); `keep agent status` and other key holders open it.
 */
export interface RunDetail {
  error?: string;
  warnings: string[];
}

const LABEL = 'keep/v1/run-detail';
/** warnings kept in a report: the first ones explain the rest */
const MAX_WARNINGS = 50;

export function sealRunDetail(keys: Pick<RepoKeys, 'runDetailKey'>, d: RunDetail): string {
  return sealJson(keys.runDetailKey, LABEL, { ...(d.error !== undefined ? { error: d.error.slice(0, 4096) } : {}), warnings: d.warnings.slice(0, MAX_WARNINGS).map((w) => w.slice(0, 1024)) });
}

/** The detail, or undefined when it does not open (another repository's key, damaged). */
export function openRunDetail(keys: Pick<RepoKeys, 'runDetailKey'>, sealed: string): RunDetail | undefined {
  const v = openJson(keys.runDetailKey, LABEL, sealed) as Partial<RunDetail> | undefined;
  if (!v || typeof v !== 'object') return undefined;
  return { ...(typeof v.error === 'string' ? { error: v.error } : {}), warnings: Array.isArray(v.warnings) ? v.warnings.filter((w) => typeof w === 'string') : [] };
}
