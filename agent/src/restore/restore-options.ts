import type { RestoreFilter } from '../selection/restore-filter.js';
import type { OverwriteMode } from './overwrite.js';
import type { RestorePlan } from './restore-plan.js';
import type { RestoreItem } from './restore-stats.js';
import type { RestorePool } from './worker-pool.js';

/** What a restore (restorer.ts) is asked to do, and whom it tells. */
export interface RestoreOptions {
  target: string;
  /** --include / --exclude (selection/restore-filter.ts); everything without one */
  filter?: RestoreFilter;
  /** after each file; `current`: its path's bytes (made a string only by whoever shows it, not per file) */
  onProgress?: (p: { files: number; bytes: number; current?: Uint8Array }) => void;
  onWarning?: (message: string) => void;
  /** workers started earlier (while scrypt ran), keyless; run() unlocks and closes them */
  pool?: RestorePool;
  /** an entry already in the target (overwrite.ts); always without one */
  overwrite?: OverwriteMode;
  /** remove what the snapshot lacks from the directories restored (target-delete.ts) */
  delete?: boolean;
  /** write nothing: decide, count and report what a restore would do */
  dryRun?: boolean;
  /** read every selected file back afterwards (verifier.ts) */
  verify?: boolean;
  /** each entry's outcome (restic's verbose_status) */
  onItem?: (item: RestoreItem) => void;
  /** count what is selected from the trees before writing (restore-plan.ts): `plan` is then the total */
  plan?: boolean;
  /** with `plan`: the count is known (before the first write) */
  onPlan?: (plan: RestorePlan) => void;
}
