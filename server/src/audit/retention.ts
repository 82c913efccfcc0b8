import fs from 'node:fs';
import { KeepError, Repository } from '@keep/core';
import { AuditCheckpoint, checkpointTable } from './checkpoints.js';
import { audit } from './log.js';
import { listSegments, readSegment } from './segments.js';
import type { Logger } from '../log.js';

/** At least a year is kept unless the operator says otherwise (`keepd serve --audit-retention`). */
export const DEFAULT_AUDIT_RETENTION = '400d';

/** "400d", "52w", "36h" -> milliseconds; never under a day (the log's monthly segments make less pointless). */
export function parseAuditRetention(text: string): number {
  const m = /^(\d+)([hdw])$/.exec(text);
  const ms = m ? Number(m[1]) * { h: 3_600_000, d: 86_400_000, w: 7 * 86_400_000 }[m[2] as 'h' | 'd' | 'w'] : NaN;
  if (!(ms >= 86_400_000)) throw new KeepError('INVALID_ARGUMENT', `--audit-retention takes a duration of at least a day (400d, 52w), not ${text}`);
  return ms;
}

/**
 * Removes whole segments whose every record is older than the retention:
 * a segment goes once the next one starts before the cutoff, the newest
 * never. The cut is checkpointed ('pruned': the last removed seq and its
 * hash, which the next segment's first record carries as prev), so verify
 * still proves the rest and tells a pruned segment from a deleted one.
 * Returns the number of segments removed (itself an audited event).
 */
export async function pruneAudit(repo: Repository, retentionMs: number): Promise<number> {
  const cutoff = repo.clock.now() - retentionMs;
  const table = checkpointTable(repo);
  let removed = 0;
  let through: AuditCheckpoint | undefined;
  repo.stateStore().env.transactionSync(() => {
    const segs = listSegments(repo.dir);
    for (let i = 0; i + 1 < segs.length; i++) {
      const next = readSegment(segs[i + 1])[0]?.record;
      if (!next || Date.parse(next.time) >= cutoff) break;
      fs.rmSync(segs[i].file);
      through = { seq: next.seq - 1, hash: next.prev };
      removed++;
    }
    if (through) table.put('pruned', through);
  });
  if (removed) await audit(repo).event('audit.prune', { segments: removed, through_seq: through!.seq });
  return removed;
}

/** How often a serving keepd looks for segments past the retention. */
const RETENTION_INTERVAL_MS = 6 * 3_600_000;

/** Retention at start and every few hours while keepd serves; returns the stop. */
export function startAuditRetention(repo: Repository, retentionMs = parseAuditRetention(DEFAULT_AUDIT_RETENTION), log: Logger): () => void {
  const run = () => void pruneAudit(repo, retentionMs).catch((e) => log.error({ err: e }, 'audit retention failed'));
  run();
  const timer = setInterval(run, RETENTION_INTERVAL_MS);
  timer.unref();
  return () => clearInterval(timer);
}
