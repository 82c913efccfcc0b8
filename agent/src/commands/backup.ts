import os from 'node:os';
import { Compression, EXIT, judgeSnapshots, KeepError, parseCompression, parseTier, SealPool, processClock, Snapshot, TIERS } from '@keep/core';
import { Archiver } from '../backup/archiver.js';
import { runBackup } from '../backup/run.js';
import { parse } from '../terminal/args.js';
import { BACKUP_SELECTION_OPTIONS, backupFilter, backupPaths } from '../selection/options.js';
import { formatBytes, formatRate, printJsonLine, printWarning } from '../terminal/output.js';
import { BackupProgress, backupSummary } from '../progress/backup-report.js';
import { PROGRESS_OPTIONS, progressMode } from '../progress/status-reporter.js';
import type { Uploader } from '../backup/uploader.js';
import { openRepositoryWhile, repoLocation } from '../repo/open.js';
import { SealedTrees } from '../backup/sealed-trees.js';
import { mark } from '../startup/timing.js';
import { RecordingView, UnchangedSource } from '../backup/unchanged.js';

/** Exit code EXIT.PARTIAL when the snapshot was saved without some entries (each named in a warning). */
export async function backupCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, {
    source: { type: 'string' },
    host: { type: 'string' },
    tag: { type: 'string', multiple: true },
    compression: { type: 'string' },
    stdin: { type: 'boolean' },
    'stdin-name': { type: 'string' },
    parent: { type: 'string' },
    force: { type: 'boolean' },
    tier: { type: 'string' },
    'no-scan': { type: 'boolean' },
    ...BACKUP_SELECTION_OPTIONS,
    ...PROGRESS_OPTIONS,
  });
  const paths = backupPaths(positionals, values, (w) => printWarning(Boolean(values.json), w, 'scan'));
  if (values.stdin && paths.length) throw new KeepError('INVALID_ARGUMENT', '--stdin takes no paths');
  if (!values.stdin && paths.length === 0) throw new KeepError('INVALID_ARGUMENT', 'usage: keep backup PATH... | --stdin --stdin-name NAME');
  if (values.stdin && !values['stdin-name']) throw new KeepError('INVALID_ARGUMENT', '--stdin needs --stdin-name NAME (the file name stored in the snapshot)');
  const tier = values.tier ? parseTier(values.tier) : undefined;
  // The tier's compression unless one is named; zstd 3 ("medium") otherwise, like restic's auto.
  const compression: Compression = values.compression ? parseCompression(values.compression) : tier ? TIERS[tier].compression : 'medium';
  const host = values.host ?? os.hostname();
  const source = values.source ?? (values.stdin ? values['stdin-name']! : host);

  const chooseParent = (list: Snapshot[]) => (values.force ? undefined : values.parent ? list.find((s) => s.id.startsWith(values.parent!)) : list[list.length - 1]);
  // While scrypt runs: the source is asked what the parent's backup asked it (backup/unchanged.ts), its snapshots
  // are listed, and the parent's trees fetched sealed (backup/sealed-trees.ts; the walk opens those it needs) -
  // when the source may well be unchanged, only the few above it, and those of directories found changed later.
  const filter = values.stdin ? undefined : backupFilter(values, paths);
  // (what the parent's walk remembered was seen without this walk's filter: with one, every directory is listed)
  const unchanged = values.stdin || filter ? undefined : UnchangedSource.start(paths, repoLocation(), source);
  const opened = await openRepositoryWhile(async (conn) => {
    const previous = await conn.snapshots({ source });
    const p = chooseParent(previous);
    const likely = unchanged?.expects(p) ?? false; // (which stops asking the source when nothing was remembered for p)
    if (!p) return { previous, trees: undefined, likely };
    const trees = new SealedTrees(conn);
    trees.fetchBelow(Buffer.from(p.root, 'hex'), likely ? 8 : Infinity);
    if (unchanged) unchanged.onMiss = (id) => trees.fetchBelow(id);
    return { previous, trees, likely };
  }, process.env, { write: true });
  const { repo, meanwhile: { previous, likely } } = opened;
  let { trees } = opened.meanwhile;
  const pool = new SealPool(repo.master);
  const warnings: string[] = [];
  let progress: BackupProgress | undefined;
  try {
    let parent = chooseParent(previous);
    if (values.parent && !parent) throw new KeepError('NOT_FOUND', `no snapshot ${values.parent} of source ${source}`);
    // The parent steers change detection only, so a record from before snapshot MACs may serve; a forged one may not.
    const auth = parent && judgeSnapshots(repo.keys.snapshotMacKey, previous).find((j) => j.snapshot === parent)!.auth;
    if (parent && auth && auth.state === 'forged') {
      if (values.parent) throw new KeepError('CORRUPT', `snapshot ${parent.id.slice(0, 8)} failed authentication: ${auth.reason}`);
      printWarning(Boolean(values.json), `not using snapshot ${parent.id.slice(0, 8)} as the parent: ${auth.reason}; every file is read`, 'parent');
      parent = undefined;
      trees = undefined;
    }
    const view = unchanged ? new RecordingView() : undefined;
    let archiver: Archiver | undefined;
    let uploads: Uploader | undefined;
    progress = new BackupProgress(progressMode(values), {
      // (--no-scan: restic's flag to spare the scan's reads; the total is then the parent's size or unknown)
      paths: values.stdin || values['no-scan'] ? undefined : paths,
      exclude: filter && ((full, st) => filter.excludes(full, st)),
      parent,
      likelyUnchanged: likely,
    });
    const reporter = progress;
    const run = { source, host, tags: values.tag ?? [], tier, compression, clock: processClock(), parent };
    const snap = await runBackup(
      repo,
      pool,
      run,
      (uploader) => {
        mark('session open');
        uploads = uploader;
        archiver = new Archiver(
          trees ? { ...repo, conn: trees.serving(repo.conn) } : repo,
          {
            ...run,
            paths,
            exclude: filter && ((full, st) => filter.excludes(full, st)),
            stdin: values.stdin ? { name: values['stdin-name']!, stream: process.stdin } : undefined,
            view,
            unchanged,
            onWarning: (w, item) => {
              warnings.push(w);
              reporter.warn(Boolean(values.json), w, item);
            },
          },
          uploader,
        );
        reporter.start(archiver);
        return archiver.run();
      },
      { meanwhile: unchanged?.unlocked(repo) },
    );
    const skipped = archiver!.skipped;
    mark(`committed${unchanged ? ` (unchanged: ${unchanged.taken} directories taken unread)` : ''}`);
    // a walk without warnings stored exactly what its view answered (skipped, vanished or resized files: it did not)
    if (view && warnings.length === 0) unchanged!.remember(snap, view);
    progress.stop();
    const st = snap.stats;
    if (values.json) {
      // restic's JSON lines end with the summary; `skipped` counts the entries left out (each named in a warning): exit code 3
      printJsonLine(
        backupSummary(snap, archiver!, uploads!.stats, new Date(), {
          // Seal workers this backup started (none for an unchanged or small one) and the process's peak memory.
          seal_workers: pool.started,
          peak_rss: process.resourceUsage().maxRSS * 1024,
          warnings,
        }),
      );
    } else {
      const d = archiver!.dirCounts;
      console.log(`Files: ${st.files_new} new, ${st.files_changed} changed, ${st.files_unmodified} unmodified`);
      console.log(`Dirs:  ${d.dirs_new} new, ${d.dirs_changed} changed, ${d.dirs_unmodified} unmodified`);
      console.log(`Read ${formatBytes(st.bytes_read)} of ${formatBytes(st.bytes)}, stored ${formatBytes(st.bytes_sent)} in ${st.chunks_new} new chunks, ${st.duration_s.toFixed(2)} s (${formatRate(st.bytes_read, st.duration_s)})`);
      console.log(`snapshot ${snap.id.slice(0, 8)} saved (source ${snap.source})`);
    }
    if (skipped && !values.json) process.stderr.write(`keep: warning: ${skipped} entr${skipped === 1 ? 'y' : 'ies'} could not be read as found (named above); snapshot saved without them, exit code ${EXIT.PARTIAL}\n`);
    return skipped ? EXIT.PARTIAL : EXIT.OK;
  } finally {
    progress?.stop();
    await pool.close();
    await opened.meanwhile.trees?.close();
    await repo.conn.close();
  }
}
