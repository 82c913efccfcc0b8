import { pausePoint } from '@keep/core';
import type { RestorePlan } from './restore-plan.js';
import type { RestoreStats } from './restore-stats.js';

/** What Restorer.interrupt() makes run() throw once everything in flight has settled. */
export class RestoreInterrupted extends Error {
  constructor() {
    super('restore interrupted');
    this.name = 'RestoreInterrupted';
  }
}

/**
 * What an interrupted restore left undone: the files the plan selects that
 * are neither written nor found already right (not reached, or partial), and
 * the partial ones by their path in the snapshot. A partial file is never left
 * under its name (worker-pool.ts writes large files under a partial name and
 * removes it on abort), so a rerun with --overwrite if-changed finds exactly these.
 */
export interface RestoreIncomplete {
  files_incomplete: number;
  bytes_incomplete: number;
  partial_files_removed: string[];
}

export function incompleteOf(plan: RestorePlan, st: RestoreStats, partial: string[]): RestoreIncomplete {
  return {
    files_incomplete: Math.max(0, plan.files - st.files_restored - st.files_skipped),
    bytes_incomplete: Math.max(0, plan.bytes - st.bytes_restored - st.bytes_skipped),
    partial_files_removed: partial,
  };
}

/**
 * Tests' seam (core's test-pause.ts): the first large file of the process
 * stops once its first chunk is written, a partial file on disk, so a test
 * can interrupt a restore in the middle of a file.
 */
let pausedOnce = false;
export async function pauseWithPartial(firstChunk: Promise<number>): Promise<void> {
  if (pausedOnce) return;
  pausedOnce = true;
  await firstChunk.catch(() => undefined);
  await pausePoint('restore-large-file');
}
