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

/** A record waiting for the next batch, with its caller's promise. */
interface Pending {
  event: string;
  who: AuditActor;
  source: string | null;
  fields: AuditFields;
  resolve: (r: AuditRecord) => void;
  reject: (e: unknown) => void;
}

/** Where the chain goes on: the newest record and the segment it is in. */
interface ChainEnd {
  name?: string;
  size: number;
  seq: number;
  hash: string;
  month?: string;
}

/**
 * The append side of the audit log (format: record.ts; files: segments.ts).
 *
 * Group commit: `record` queues its event and returns a promise; one
 * batch at a time is sealed in call order and written with one write per
 * segment (a page-cache copy) under the state store's write transaction,
 * the lock that orders appends across keepd and its shell commands; the
 * segment's fsync and the head checkpoint's LMDB commit then run off the
 * event loop, while the next events queue for the next batch. The promise
 * resolves once its batch is fsync'd and checkpointed: handlers await it
 * before their RPC answers, so an acknowledged commit, token change or
 * read is on disk in the log; a crash loses only records nobody was told
 * were written. Callers that need no durability may leave it (a failure
 * then goes unseen by them, never as an unhandled rejection).
 */
export class AuditLog {
  /** the newest record this process knows, valid while the segment still has `size` bytes */
  private known: Required<ChainEnd> | undefined;
  private queue: Pending[] = [];
  private writing: Promise<void> | undefined;

  constructor(private readonly repo: Repository) {}

  /** Append one event; resolves once it is durable. `fields.source`, when given, becomes the record's source. */
  record(event: string, who: AuditActor, fields: Record<string, AuditFields[string] | undefined> = {}): Promise<AuditRecord> {
    const { source, ...given } = fields;
    const rest: AuditFields = Object.fromEntries(Object.entries(given).filter((e): e is [string, AuditFields[string]] => e[1] !== undefined));
    const done = new Promise<AuditRecord>((resolve, reject) => this.queue.push({ event, who, source: typeof source === 'string' ? source : null, fields: rest, resolve, reject }));
    done.catch(() => undefined); // an unawaited record must not end the process
    this.writing ??= this.writeQueued().finally(() => (this.writing = undefined));
    return done;
  }

  /** Wait until every record queued so far is durable (keepd's shutdown, before the state store closes). */
  async flush(): Promise<void> {
    while (this.writing) await this.writing;
  }

  /** Batches until the queue is empty; events raised while one is written form the next. */
  private async writeQueued(): Promise<void> {
    await new Promise((r) => setImmediate(r)); // events of the same turn share the first batch
    while (this.queue.length) {
      const batch = this.queue.splice(0);
      try {
        const written = await this.commit(batch);
        batch.forEach((p, i) => p.resolve(written[i]));
      } catch (e) {
        for (const p of batch) p.reject(e);
      }
    }
  }

  /** Seal and write a batch under the lock, then make it durable: fsync, then the head checkpoint. */
  private async commit(batch: Pending[]): Promise<AuditRecord[]> {
    const table = checkpointTable(this.repo);
    const now = new Date(this.repo.clock.now());
    const records: AuditRecord[] = [];
    const files = new Map<string, Buffer[]>();
    this.repo.stateStore().env.transactionSync(() => {
      let end: ChainEnd = this.head(table.get('head'));
      const month = now.toISOString().slice(0, 7);
      for (const p of batch) {
        const rotate = !end.name || end.month !== month || end.size >= SEGMENT_MAX_BYTES;
        const name = rotate ? segmentName(end.seq + 1) : end.name!;
        const rec = sealRecord({ seq: end.seq + 1, time: now.toISOString(), event: p.event, token: p.who.tokenId ?? null, peer: p.who.peer ?? null, source: p.source, fields: p.fields, prev: end.hash });
        const line = Buffer.from(encodeLine(rec));
        files.set(name, [...(files.get(name) ?? []), line]);
        records.push(rec);
        end = { name, size: (rotate ? 0 : end.size) + line.length, seq: rec.seq, hash: rec.hash, month: rotate ? month : end.month };
      }
      fs.mkdirSync(auditDir(this.repo.dir), { recursive: true, mode: 0o700 });
      for (const [name, lines] of files) appendAll(`${auditDir(this.repo.dir)}/${name}`, Buffer.concat(lines));
      this.known = end as Required<ChainEnd>;
    });
    for (const name of files.keys()) await fsyncFile(`${auditDir(this.repo.dir)}/${name}`);
    const last = records.at(-1)!;
    // Another process may have checkpointed a later head meanwhile: the head only moves forward.
    await this.repo.stateStore().env.transaction(() => {
      if ((table.get('head')?.seq ?? 0) < last.seq) void table.put('head', { seq: last.seq, hash: last.hash } satisfies AuditCheckpoint);
    });
    return records;
  }

  /** An event keepd raises itself (`kind`: "config.reload", "alert.firing", "drill.done", ...): counts, ids and names only. */
  event(kind: string, fields: Record<string, AuditFields[string] | undefined> = {}): Promise<AuditRecord> {
    return this.record(kind, KEEPD, fields);
  }

  /** The newest record's seq as checkpointed (0: none yet): the metric keep_audit_head_seq. */
  headSeq(): number {
    return checkpointTable(this.repo).get('head')?.seq ?? 0;
  }

  /** Where the next record chains on: the last complete record of the newest segment (cached while its size is unchanged). */
  private head(checkpoint: AuditCheckpoint | undefined): ChainEnd {
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

/** Write all of `buf` at the end of `file` (a regular file takes it in one write; the loop covers a short one). */
function appendAll(file: string, buf: Buffer): void {
  const fd = fs.openSync(file, 'a', 0o600);
  try {
    for (let off = 0; off < buf.length; ) off += fs.writeSync(fd, buf, off);
  } finally {
    fs.closeSync(fd);
  }
}

/** fsync a file on the thread pool (fsync covers the file's data whichever descriptor wrote it). */
async function fsyncFile(file: string): Promise<void> {
  const fh = await fs.promises.open(file, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
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
