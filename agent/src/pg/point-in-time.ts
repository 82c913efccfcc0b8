import os from 'node:os';
import { Clock, SealPool } from '@keep/core';
import { allowUnauthenticated, stderrWarn, usableSnapshots } from '../repo/authentic.js';
import type { Unlocked } from '../repo/open.js';
import { pgCommandLine } from './env.js';
import { planRestore, readWalText, RestorePlan, restoreFiles, TimelineChoice, writeRecoveryConfig } from './restore.js';

/** What `keep pg restore` asks for, its flags parsed. */
export interface PointInTimeOptions {
  source: string;
  pgdata: string;
  /** ms, or undefined: replay all archived WAL */
  at?: number;
  /** a base backup id prefix (default: the newest that can reach `at`) */
  base?: string;
  timeline: TimelineChoice;
  /** OID -> directory, for tablespaces restored elsewhere */
  tablespaces: Map<string, string>;
  /** unmapped tablespaces go to ROOT/OID (drills) rather than back where they were */
  tablespaceRoot?: string;
  action: string;
  archiveMode: 'off' | 'preserve';
  /** restore_command as given (default: keep pg wal-fetch for this source and cluster) */
  restoreCommand?: string;
  dryRun: boolean;
  allowUnauthenticated?: boolean;
  env: NodeJS.ProcessEnv;
  envFile?: string;
  clock: Clock;
  onProgress?: (files: number, bytes: number, current?: string) => void;
}

export type PointInTimeResult = {
  plan: RestorePlan;
  files: Awaited<ReturnType<typeof restoreFiles>>;
  /** the recovery settings written to postgresql.auto.conf (a dry run: only restore_command) */
  settings: string[];
};

/**
 * A point-in-time restore: the base backup and WAL range planned (and checked
 * against the archive) before anything is copied, the base backup's files
 * restored into `pgdata`, and the recovery settings written so that starting
 * PostgreSQL replays to the target.
 */
export async function pointInTimeRestore(repo: Unlocked, pool: SealPool, o: PointInTimeOptions): Promise<PointInTimeResult> {
  const snaps = usableSnapshots(repo.keys, await repo.conn.snapshots({ source: o.source }), { allowUnauthenticated: allowUnauthenticated(o.allowUnauthenticated, o.env), warn: stderrWarn });
  const plan = await planRestore(snaps, { at: o.at, base: o.base, timeline: o.timeline }, (w) => readWalText(repo, pool, w, os.tmpdir()));
  // Built before copying anything: a restore_command that cannot be written should fail early.
  const system = plan.base.system;
  const restoreCommand = o.restoreCommand ?? pgCommandLine('wal-fetch', ['--source', o.source, ...(system ? ['--system', system] : [])], o.env, o.envFile, ['%f', '%p']);
  if (o.dryRun) return { plan, files: { files: 0, bytes: 0, tablespaces: [], owner: { uid: 0, gid: 0, mode: 0 } }, settings: [`restore_command = '${restoreCommand}'`] };
  const files = await restoreFiles(repo, plan.base, { pgdata: o.pgdata, tablespaces: o.tablespaces, tablespaceRoot: o.tablespaceRoot, clock: o.clock, onProgress: o.onProgress });
  const settings = writeRecoveryConfig(o.pgdata, {
    restoreCommand,
    at: o.at,
    timeline: plan.timeline === 'current' ? plan.base.timeline : plan.timeline,
    action: o.action,
    archiveMode: o.archiveMode === 'off' ? 'off' : undefined,
    comment: `${o.at !== undefined ? `to ${new Date(o.at).toISOString()}` : 'to the end of the archived WAL'} from base backup ${plan.base.snapshot.id} of source ${o.source}`,
    owner: files.owner,
  });
  return { plan, files, settings };
}
