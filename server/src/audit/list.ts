import { Clock, KeepError } from '@keep/core';
import { AuditRecord } from './record.js';
import { listSegments, readSegment } from './segments.js';

export interface AuditFilter {
  /** records at or after this time (ms since the epoch) */
  since?: number;
  source?: string;
  /** an event name, or its family: "token" matches token.create, token.revoke, ... */
  event?: string;
}

/** "2026-12-01", an RFC 3339 time, or an age ("7d", "12h", "30m") back from now. */
export function parseSince(text: string, clock: Clock): number {
  const age = /^(\d+)([dhm])$/.exec(text);
  if (age) return clock.now() - Number(age[1]) * { d: 86_400_000, h: 3_600_000, m: 60_000 }[age[2] as 'd' | 'h' | 'm'];
  const t = Date.parse(text);
  if (Number.isNaN(t)) throw new KeepError('INVALID_ARGUMENT', `--since takes a time (2026-12-01, RFC 3339) or an age (7d, 12h, 30m), not ${text}`);
  return t;
}

/** The records that pass `f`, oldest first; damaged lines are skipped (verify names them). */
export function listAudit(data: string, f: AuditFilter = {}): AuditRecord[] {
  const out: AuditRecord[] = [];
  for (const seg of listSegments(data)) {
    for (const { record: r } of readSegment(seg)) {
      if (!r) continue;
      if (f.since !== undefined && Date.parse(r.time) < f.since) continue;
      if (f.source !== undefined && r.source !== f.source) continue;
      if (f.event !== undefined && r.event !== f.event && !r.event.startsWith(`${f.event}.`)) continue;
      out.push(r);
    }
  }
  return out;
}

/** One line for people: shared with `keep admin audit list` (core keepd-report-format.ts). */
export { formatAuditRecord } from '@keep/core';
