import crypto from 'node:crypto';
import { AUDIT_FILES, AuditView } from '@keep/core';

/**
 * One audit record, the layout of a line in audit/audit-<seq>.jsonl:
 *
 *   {"v":1,"seq":7,"time":"2026-12-06T00:40:00.000Z","event":"session.commit",
 *    "token":"9f1c…","peer":"127.0.0.1","source":"db1","fields":{…},
 *    "prev":"<hash of seq 6>","hash":"<SHA-256 of this line without hash>"}
 *
 * `hash` is SHA-256 (hex) over the JSON text of every field before it, in
 * this order; `prev` is the previous record's hash (64 zeros before seq 1),
 * also across segments. SHA-256 rather than core's BLAKE3 so anyone can
 * re-check a chain with standard tools. Fields hold counts, ids and names
 * of sources and tokens only: never file names, paths inside snapshots,
 * agents' error texts or secrets (the hooks pass nothing else). The fields
 * people see are core's AuditView (keepd-report-format.ts), shared with
 * `keep admin audit list`.
 */
export interface AuditRecord extends AuditView {
  v: number;
  fields: AuditFields;
  prev: string;
  hash: string;
}

/** What an event may carry: counts, flags, ids and short names. */
export type AuditFields = Record<string, number | boolean | string | string[]>;

export const GENESIS_HASH = '0'.repeat(64);

/** The JSON text the hash covers: every field but `hash`, in the layout's order. */
function bodyText(r: Omit<AuditRecord, 'hash'>): string {
  return JSON.stringify({ v: r.v, seq: r.seq, time: r.time, event: r.event, token: r.token, peer: r.peer, source: r.source, fields: r.fields, prev: r.prev });
}

export function hashOf(r: Omit<AuditRecord, 'hash'>): string {
  return crypto.createHash(AUDIT_FILES.hash).update(bodyText(r)).digest('hex');
}

/** A new record chained after `prev`. */
export function sealRecord(r: Omit<AuditRecord, 'hash' | 'v'>): AuditRecord {
  const body = { v: AUDIT_FILES.version, ...r };
  return { ...body, hash: hashOf(body) };
}

/** One line of a segment, newline included. */
export function encodeLine(r: AuditRecord): string {
  return bodyText(r).slice(0, -1) + `,"hash":${JSON.stringify(r.hash)}}\n`;
}

/** A line back to a record, or undefined when it is not one (a damaged line). */
export function decodeLine(line: string): AuditRecord | undefined {
  let o: unknown;
  try {
    o = JSON.parse(line);
  } catch {
    return undefined;
  }
  const r = o as AuditRecord;
  if (typeof r !== 'object' || r === null) return undefined;
  if (!Number.isSafeInteger(r.seq) || typeof r.time !== 'string' || typeof r.event !== 'string' || typeof r.prev !== 'string' || typeof r.hash !== 'string') return undefined;
  if (typeof r.fields !== 'object' || r.fields === null) return undefined;
  return r;
}

/** Does the record's hash cover what it says? */
export function sealIntact(r: AuditRecord): boolean {
  return hashOf(r) === r.hash;
}
