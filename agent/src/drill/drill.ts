import crypto from 'node:crypto';
import os from 'node:os';
import { DrillMode, DrillReport, KeepError, Snapshot } from '@keep/core';
import type { Unlocked } from '../repo/open.js';
import { Restorer } from '../restore/restorer.js';
import { RestorePool, restoreWorkerCount } from '../restore/worker-pool.js';
import { errorClass } from '../service/run-error-class.js';
import { TreeReader } from '../tree/tree-reader.js';
import { checkMetadata } from './metadata-check.js';
import { readCheck } from './read-check.js';
import { makeScratch, removeStaleScratch } from './scratch.js';

export interface DrillOptions {
  /** where the scratch directory goes (default: the system's temp directory); ignored by a read drill */
  parent?: string;
  /** 'read': --no-write */
  mode: DrillMode;
  /** the clock the drill is timed with (ms), and when the drill began on it (before connecting: start-up counts) */
  now: () => number;
  started: number;
  /** the agent's wall clock for the report's start_ms / end_ms */
  wallStart: number;
  wallNow: () => number;
  onProgress?: (p: { files: number; bytes: number }) => void;
  /** workers started while the key was derived (write drills); closed here */
  pool?: RestorePool;
}

export interface DrillResult {
  report: DrillReport;
  /** what differed from the snapshot ("path: why"), and the error that stopped the drill */
  failures: string[];
  error?: Error;
  dirs: number;
  symlinks: number;
  entries_checked: number;
  /** a write drill's scratch directory (removed by now), and stale ones of killed drills removed first */
  scratch?: string;
  stale_removed: string[];
}

/**
 * One restore drill of a files snapshot (a PostgreSQL drill is its own
 * runner, pg-drill.ts, reporting the same DrillReport with kind
 * 'postgres'). A write drill restores through the restore code path
 * (Restorer, its workers and parallelism) into a fresh scratch directory,
 * reads every file back against the snapshot (restore --verify: size and
 * content ids), checks the metadata, and removes the scratch directory,
 * whatever happened. A read drill (--no-write) fetches, authenticates and
 * checks every chunk of every file without writing. Never throws for a
 * drill that failed: the failure is the result, to be reported.
 */
export async function runDrill(repo: Unlocked, snap: Snapshot, o: DrillOptions): Promise<DrillResult> {
  const failures: string[] = [];
  let error: Error | undefined;
  let setup = 0;
  let files = 0;
  let bytes = 0;
  let verified = 0;
  let dirs = 0;
  let symlinks = 0;
  let checked = 0;
  let scratchDir: string | undefined;
  let stale: string[] = [];
  const root = Buffer.from(snap.root, 'hex');
  try {
    if (o.mode === 'read') {
      await o.pool?.close();
      setup = o.now() - o.started;
      const r = await readCheck(repo, root, restoreWorkerCount(), () => o.onProgress?.({ files: ++files, bytes }));
      ({ files, bytes, dirs, symlinks } = r);
      verified = files;
    } else {
      const parent = o.parent ?? os.tmpdir();
      stale = removeStaleScratch(parent);
      const scratch = makeScratch(parent);
      scratchDir = scratch.dir;
      try {
        setup = o.now() - o.started;
        const isRoot = process.getuid?.() === 0;
        const r = new Restorer(repo, { target: scratch.target, pool: o.pool ?? new RestorePool(restoreWorkerCount(), isRoot), verify: true, onProgress: (p) => o.onProgress?.(p) });
        const st = await r.run(root, o.started, o.now);
        files = st.files + st.hardlinks;
        bytes = st.bytes;
        dirs = st.dirs;
        symlinks = st.symlinks;
        verified = st.files_verified ?? 0;
        failures.push(...(st.verify_failures ?? []));
        const meta = await checkMetadata(new TreeReader(repo), root, scratch.target, isRoot);
        checked = meta.checked;
        failures.push(...meta.failures);
      } finally {
        scratch.remove();
      }
    }
  } catch (e) {
    error = e as Error;
    await o.pool?.close().catch(() => undefined);
  }
  const report = drillReport(o, { source: snap.source, snapshot: snap.id, kind: 'files', mode: o.mode, setup, files, bytes, verified, failures: failures.length, error });
  return { report, failures, error, dirs, symlinks, entries_checked: checked, scratch: scratchDir, stale_removed: stale };
}

/** When a drill ran, on the drill's clock and the agent's wall clock (both runners' options). */
export interface DrillTiming {
  now: () => number;
  started: number;
  wallStart: number;
  wallNow: () => number;
}

/** The report of a drill that began at t.started and ends now: failed when it stopped on an error or found differences. */
export function drillReport(
  t: DrillTiming,
  r: { source: string; snapshot: string; kind: DrillReport['kind']; mode: DrillMode; setup: number; files: number; bytes: number; verified: number; failures: number; error?: Error },
): DrillReport {
  const duration = t.now() - t.started;
  const failed = r.error !== undefined || r.failures > 0;
  return {
    id: crypto.randomBytes(16).toString('hex'),
    source: r.source,
    snapshot: r.snapshot,
    kind: r.kind,
    mode: r.mode,
    result: failed ? 'failure' : 'success',
    start_ms: t.wallStart,
    end_ms: Math.max(t.wallStart, t.wallNow()),
    duration_ms: Math.max(0, Math.round(duration)),
    setup_ms: Math.max(0, Math.min(Math.round(r.setup), Math.round(duration))),
    files: r.files,
    bytes: r.bytes,
    files_verified: r.verified,
    verify_failures: r.failures,
    ...(failed ? { error_class: r.error ? errorClass(r.error) : 'CORRUPT' } : {}),
  };
}

/** The error a failed drill ends its command with. */
export function drillFailure(r: DrillResult): KeepError {
  const why = r.error ? r.error.message : `${r.failures.length} difference(s) from the snapshot (first: ${r.failures[0]})`;
  return new KeepError(r.error instanceof KeepError ? r.error.code : 'CORRUPT', `drill of snapshot ${r.report.snapshot.slice(0, 8)} failed: ${why}`);
}
