import { Clock, SealPool } from '@keep/core';
import { Archiver } from '../backup/archiver.js';
import { runBackup } from '../backup/run.js';
import type { Unlocked } from '../repo/open.js';
import { backupFilter } from '../selection/options.js';
import type { FilesJobConfig } from './config-schema.js';
import type { Job } from './config.js';
import { latestParent } from './parent.js';
import type { RunTotals } from './run-outcome.js';

/** A files job's exclude keys as the selection flags' values (selection/options.ts), so both read them alike. */
export function selectionFlags(j: FilesJobConfig): Record<string, string | string[] | boolean | undefined> {
  return {
    exclude: j.exclude,
    iexclude: j.iexclude,
    'exclude-file': j.exclude_file,
    'iexclude-file': j.iexclude_file,
    'exclude-caches': j.exclude_caches,
    'exclude-if-present': j.exclude_if_present,
    'exclude-larger-than': j.exclude_larger_than,
    'one-file-system': j.one_file_system,
  };
}

export interface JobContext {
  repo: Unlocked;
  pool: SealPool;
  host: string;
  clock: Clock;
  signal: AbortSignal;
  warn: (message: string) => void;
}

/** One run of a files job: `keep backup PATH...` in-process, stopped between entries when the agent must stop. */
export async function runFilesJob(job: Job, spec: FilesJobConfig, c: JobContext): Promise<RunTotals> {
  const filter = backupFilter(selectionFlags(spec), spec.paths);
  const parent = await latestParent(c.repo, job.source, c.warn);
  const warnings: string[] = [];
  const run = { source: job.source, host: c.host, tags: job.tags, tier: job.tier, compression: job.compression, clock: c.clock, parent };
  const snap = await runBackup(c.repo, c.pool, run, (uploader) => {
    const archiver = new Archiver(
      c.repo,
      {
        ...run,
        paths: spec.paths,
        // asked once per entry: where a stop request ends the walk (the session is then aborted, nothing committed)
        exclude: (full, st) => {
          c.signal.throwIfAborted();
          return filter?.excludes(full, st) ?? false;
        },
        onWarning: (w) => {
          warnings.push(w);
          c.warn(w);
        },
      },
      uploader,
    );
    return archiver.run();
  });
  return { snapshot: snap.id, files: snap.stats.files, bytes: snap.stats.bytes, warnings };
}
