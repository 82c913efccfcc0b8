import { judgeSnapshots, Snapshot } from '@keep/core';
import type { Unlocked } from '../repo/open.js';

/**
 * The source's latest snapshot, which steers change detection; one whose MAC
 * is forged is not used (every file is read), as `keep backup` does.
 */
export async function latestParent(repo: Unlocked, source: string, warn: (message: string) => void): Promise<Snapshot | undefined> {
  const list = await repo.conn.snapshots({ source });
  const parent = list[list.length - 1];
  if (!parent) return undefined;
  const auth = judgeSnapshots(repo.keys.snapshotMacKey, list).find((j) => j.snapshot === parent)!.auth;
  if (auth.state === 'forged') {
    warn(`not using snapshot ${parent.id.slice(0, 8)} as the parent: ${auth.reason}; every file is read`);
    return undefined;
  }
  return parent;
}
