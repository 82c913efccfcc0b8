import fs from 'node:fs';
import { Repository } from '@keep/core';
import { AuditCheckpoint, checkpointTable } from './checkpoints.js';
import { AuditFields, AuditRecord, encodeLine, GENESIS_HASH, sealRecord } from './record.js';
import { auditDir, listSegments, segmentName, segmentTail } from './segments.js';

/** Who caused an event: a principal (token id and peer address), or keepd's own shell (LOCAL). */
export interface AuditActor {
  tokenId?: string;
  peer?: string;
}

/** keepd's own commands, typed on its shell: no token, peer "local". */
export const LOCAL: AuditActor = { peer: 'local' };

/** keepd itself, on its own schedule (retention; later config reloads, alert transitions, drills). */
export const KEEPD: AuditActor = { peer: 'keepd' };

/** A segment holds at most this much; it also ends with its calendar month (retention removes whole segments). */
const SEGMENT_MAX_BYTES = 64 * 1024 * 1024;

/**
 * The append side of the audit log (format: record.ts; files: segments.ts).
 *
 * Durability: an append is written and fsync'd, then its checkpoint
 * committed (state.mdb, synchronously), before `record` returns; hooks call
 * it before their RPC answers, so an acknowledged commit, token change or
 * read is on disk in the log. It costs one fsync of the segment and one
 * LMDB commit per event: events are per session, stream or command, never
 * per blob.
 */
export class AuditLog {
  /** the newest record this process knows, valid while the segment still has `size` bytes */
  private known: { name: string; size: number; seq: number; hash: string; month: string } | undefined;

  constructor(private readonly repo: Repository) {}

  /** Append one event. `fields.source`, when given, becomes the record's source. */
  record(event: string, who: AuditActor, fields: Record<string, AuditFields[string] | undefined> = {}): AuditRecord {
    const { source, ...given } = fields;
    const rest: AuditFields = Object.fromEntries(Object.entries(given).filter((e): e is [string, AuditFields[string]] => e[1] !== undefined));
    const table = checkpointTable(this.repo);
    const now = new Date(this.repo.clock.now());
    let written: AuditRecord | undefined;
    // The state store's write transaction is the cross-process lock: keepd and `keepd token create` append in turn.
    this.repo.stateStore().env.transactionSync(() => {
      const head = this.head(table.get('head'));
      const month = now.toISOString().slice(0, 7);
      const rotate = !head.name || head.month !== month || head.size >= SEGMENT_MAX_BYTES;
      const name = rotate ? segmentName(head.seq + 1) : head.name!;
      const rec = sealRecord({ seq: head.seq + 1, time: now.toISOString(), event, token: who.tokenId ?? null, peer: who.peer ?? null, source: typeof source === 'string' ? source : null, fields: rest, prev: head.hash });
      const line = Buffer.from(encodeLine(rec));
      fs.mkdirSync(auditDir(this.repo.dir), { recursive: true, mode: 0o700 });
      const file = `${auditDir(this.repo.dir)}/${name}`;
      const fd = fs.openSync(file, 'a', 0o600);
      try {
        fs.writeSync(fd, line);
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
      table.put('head', { seq: rec.seq, hash: rec.hash } satisfies AuditCheckpoint);
      this.known = { name, size: (rotate ? 0 : head.size) + line.length, seq: rec.seq, hash: rec.hash, month: rotate ? month : head.month! };
      written = rec;
    });
    return written!;
  }

  /** An event keepd raises itself (`kind`: "config.reload", "alert.firing", "drill.done", ...): counts, ids and names only. */
  event(kind: string, fields: Record<string, AuditFields[string] | undefined> = {}): AuditRecord {
    return this.record(kind, KEEPD, fields);
  }

  /** The newest record's seq as checkpointed (0: none yet): the metric keep_audit_head_seq. */
  headSeq(): number {
    return checkpointTable(this.repo).get('head')?.seq ?? 0;
  }

  /** Where the next record chains on: the last complete record of the newest segment (cached while its size is unchanged). */
  private head(checkpoint: AuditCheckpoint | undefined): { name?: string; size: number; seq: number; hash: string; month?: string } {
    const segs = listSegments(this.repo.dir);
    const last = segs.at(-1);
    // No segment at all: the chain goes on from the checkpoint, so a removed log shows as missing records.
    if (!last) return { size: 0, seq: checkpoint?.seq ?? 0, hash: checkpoint?.hash ?? GENESIS_HASH };
    const size = fs.statSync(last.file).size;
    if (this.known && this.known.name === last.name && this.known.size === size) return this.known;
    const tail = segmentTail(last.file);
    // A torn line past the last newline was never acknowledged: cut it so the next record starts on its own line.
    if (tail.completeBytes < size) fs.truncateSync(last.file, tail.completeBytes);
    if (!tail.last) return { size: tail.completeBytes, seq: last.firstSeq - 1, hash: checkpoint?.hash ?? GENESIS_HASH };
    const first = firstRecordTime(last.file) ?? tail.last.time;
    return { name: last.name, size: tail.completeBytes, seq: tail.last.seq, hash: tail.last.hash, month: first.slice(0, 7) };
  }
}

/** The time of a segment's first record (its month decides rotation). */
function firstRecordTime(file: string): string | undefined {
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.alloc(4096);
    const n = fs.readSync(fd, buf, 0, buf.length, 0);
    const m = /"time":"([^"]+)"/.exec(buf.subarray(0, n).toString('utf8'));
    return m?.[1];
  } finally {
    fs.closeSync(fd);
  }
}

const logs = new WeakMap<Repository, AuditLog>();

/** The audit log of an open repository (one per repository object, so its cache is shared by every hook). */
export function audit(repo: Repository): AuditLog {
  let log = logs.get(repo);
  if (!log) logs.set(repo, (log = new AuditLog(repo)));
  return log;
}
