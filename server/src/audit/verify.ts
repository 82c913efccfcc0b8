import { KeepError } from '@keep/core';
import { readCheckpoints } from './checkpoints.js';
import { GENESIS_HASH, sealIntact } from './record.js';
import { listSegments, readSegment } from './segments.js';
import type { ReplicatedCheckpoint } from './replicated.js';

/** The first thing wrong with a chain: the seq where it breaks and why. */
export interface AuditDamage {
  seq: number;
  segment?: string;
  line?: number;
  reason: string;
}

export interface AuditVerifyReport {
  ok: boolean;
  records: number;
  segments: number;
  first_seq: number | null;
  last_seq: number | null;
  /** the head checkpointed in state.mdb (truncation is judged against it) */
  checkpoint: { seq: number; hash: string } | null;
  /** retention's cut: records up to this seq were removed on purpose */
  pruned_through: number;
  /** with --against: the replica's checkpoints of this log, how many were checked and the newest */
  replicated?: { checkpoints: number; checked: number; newest: ReplicatedCheckpoint | null };
  damage?: AuditDamage;
}

/**
 * Proves the chain: seqs consecutive from retention's cut (or 1), each
 * record's hash over its own text, each `prev` the hash before it (across
 * segments), and the head checkpoint in state.mdb present with its hash.
 * An edited record fails its hash; a deleted or reordered one breaks the
 * seq order at the first missing seq; a truncated log ends before the
 * checkpoint. The checkpoints are read before the files, so records a
 * serving keepd appends meanwhile only lengthen what is checked.
 * `against`, the checkpoints a replica received from this keepd, adds the
 * proof state.mdb alone cannot give when it was rewritten too: each one
 * above retention's cut must still be in the log with its hash.
 */
export function verifyAudit(data: string, against?: ReplicatedCheckpoint[]): AuditVerifyReport {
  const cp = readCheckpoints(data);
  const segs = listSegments(data);
  const prunedThrough = cp.pruned?.seq ?? 0;
  const report: AuditVerifyReport = { ok: true, records: 0, segments: segs.length, first_seq: null, last_seq: null, checkpoint: cp.head ?? null, pruned_through: prunedThrough };
  const fail = (d: AuditDamage) => ({ ...report, ok: false, damage: d });

  let expected = prunedThrough + 1;
  let prev = cp.pruned?.hash ?? GENESIS_HASH;
  let headSeen = false;
  const wanted = new Set(against?.map((c) => c.seq));
  const hashes = new Map<number, string>();
  for (const seg of segs) {
    const lines = readSegment(seg);
    if (lines.length && seg.firstSeq !== expected) return fail({ seq: expected, segment: seg.name, reason: `segment starts at seq ${seg.firstSeq}, expected ${expected}: records are missing` });
    for (const { line, record: r } of lines) {
      const at = { seq: expected, segment: seg.name, line };
      if (!r) return fail({ ...at, reason: 'not a record (damaged line)' });
      if (r.seq !== expected) return fail({ ...at, reason: r.seq > expected ? `found seq ${r.seq} where ${expected} belongs: records deleted or reordered` : `found seq ${r.seq} again after ${expected - 1}: records reordered or copied` });
      if (!sealIntact(r)) return fail({ ...at, reason: 'record edited: its hash does not cover its text' });
      if (r.prev !== prev) return fail({ ...at, reason: 'chain broken: prev is not the hash of the record before' });
      if (cp.head && r.seq === cp.head.seq) {
        if (r.hash !== cp.head.hash) return fail({ ...at, reason: 'record differs from the checkpoint in state.mdb (the log was rewritten)' });
        headSeen = true;
      }
      if (wanted.has(r.seq)) hashes.set(r.seq, r.hash);
      report.first_seq ??= r.seq;
      report.last_seq = r.seq;
      report.records++;
      prev = r.hash;
      expected++;
    }
  }
  if (cp.head && !headSeen) return fail({ seq: expected, reason: `the log ends at seq ${expected - 1} but state.mdb checkpointed seq ${cp.head.seq}: truncated` });
  if (!against) return report;
  report.replicated = { checkpoints: against.length, checked: 0, newest: against.at(-1) ?? null };
  for (const c of against) {
    if (c.seq <= prunedThrough) continue; // retention removed it on purpose (the pruned checkpoint says so)
    const named = `the replica's checkpoint seq ${c.seq} (hash ${c.hash.slice(0, 12)}, from ${c.upstream} at ${c.time})`;
    const h = hashes.get(c.seq);
    if (h === undefined) return fail({ seq: c.seq, reason: `the log ends at seq ${expected - 1} below ${named}: truncated` });
    if (h !== c.hash) return fail({ seq: c.seq, reason: `record ${c.seq} differs from ${named}: the log was rewritten` });
    report.replicated.checked++;
  }
  return report;
}

/** What verify says for people. */
export function formatVerify(r: AuditVerifyReport): string {
  const span = r.records ? `seq ${r.first_seq}..${r.last_seq}` : 'no records';
  const rep = r.replicated ? `; ${r.replicated.checkpoints} replicated checkpoint(s)${r.replicated.newest ? `, newest seq ${r.replicated.newest.seq} at ${r.replicated.newest.time}` : ''}` : '';
  const base = `audit log: ${r.records} record(s) in ${r.segments} segment(s), ${span}${r.pruned_through ? ` (up to seq ${r.pruned_through} removed by retention)` : ''}; checkpoint ${r.checkpoint ? `seq ${r.checkpoint.seq}` : 'none'}${rep}`;
  return r.damage ? `${base}\nDAMAGE at seq ${r.damage.seq}${r.damage.segment ? ` (${r.damage.segment}${r.damage.line ? ` line ${r.damage.line}` : ''})` : ''}: ${r.damage.reason}` : `${base}\nchain intact`;
}

/** The error verify ends with when the chain is broken: CORRUPT, exit 4 (damage). */
export function auditDamage(r: AuditVerifyReport): KeepError {
  return new KeepError('CORRUPT', `audit log damaged at seq ${r.damage!.seq}: ${r.damage!.reason}`);
}
