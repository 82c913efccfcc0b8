import { byTime, judgeSnapshots, JudgedSnapshot, recordedTime, RepoKeys, Snapshot } from '@keep/core';

/**
 * Choosing snapshots with the key: only records whose MAC proves an agent of
 * this repository wrote them as they are (core snapshot/auth.ts). A forged,
 * edited or re-filed record is skipped with a warning when choosing "latest"
 * or --at, and refused when named. A record without a MAC (written before
 * records were authenticated) is used only when the user allows it:
 * --allow-unauthenticated, or KEEP_ALLOW_UNAUTHENTICATED=1 for commands
 * PostgreSQL runs (wal-fetch).
 */
export interface SelectOptions {
  source?: string;
  at?: string;
  allowUnauthenticated?: boolean;
  /** one line per warning (default: stderr) */
  warn?: (message: string) => void;
}

export const stderrWarn = (m: string) => process.stderr.write(`keep: warning: ${m}\n`);

export function allowUnauthenticated(flag: boolean | undefined, env: NodeJS.ProcessEnv = process.env): boolean {
  return !!flag || env.KEEP_ALLOW_UNAUTHENTICATED === '1';
}

export function usable(j: JudgedSnapshot, allow: boolean): boolean {
  return j.auth.state === 'authentic' || (allow && j.auth.state === 'unauthenticated');
}

export const describe = (s: Snapshot) => `${s.id.slice(0, 8)} (source ${s.source}, ${s.time})`;

/** Warn about the records skipped that would have been chosen otherwise: newer than `chosen`, not after `at`. */
export function warnSkipped(judged: JudgedSnapshot[], allow: boolean, chosen: Snapshot | undefined, at: number, warn: (m: string) => void): void {
  const after = chosen ? recordedTime(chosen) : -Infinity;
  let legacy = 0;
  for (const j of judged) {
    if (usable(j, allow)) continue;
    // A forged record counts by the later of its times: a rewritten commit time may have moved it back.
    const t = j.auth.state === 'forged' ? Math.max(recordedTime(j.snapshot), Date.parse(j.snapshot.time) || -Infinity) : recordedTime(j.snapshot);
    if (t < after || t > at) continue;
    if (j.auth.state === 'forged') warn(`skipping snapshot ${describe(j.snapshot)}: ${j.auth.reason}`);
    else legacy++;
  }
  if (legacy) warn(`skipping ${legacy} newer snapshot(s) without a MAC (written before snapshot records were authenticated, or by keepd); --allow-unauthenticated uses them`);
}

/** The records a command may use, oldest first; the others are reported through `warn` (when given). */
export function usableSnapshots(keys: RepoKeys, list: Snapshot[], opts: Pick<SelectOptions, 'allowUnauthenticated' | 'warn'> = {}): Snapshot[] {
  const allow = !!opts.allowUnauthenticated;
  const judged = judgeSnapshots(keys.snapshotMacKey, [...list].sort(byTime));
  if (opts.warn) warnSkipped(judged, allow, undefined, Infinity, opts.warn);
  return judged.filter((j) => usable(j, allow)).map((j) => j.snapshot);
}

