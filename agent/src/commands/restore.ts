import path from 'node:path';
import { processClock } from '@keep/core';
import { parse } from '../terminal/args.js';
import { formatBytes, formatRate, printJsonLine } from '../terminal/output.js';
import { RestoreProgress } from '../progress/restore-report.js';
import { PROGRESS_OPTIONS, progressMode } from '../progress/status-reporter.js';
import { openRepositoryWhile } from '../repo/open.js';
import { parseOverwrite } from '../restore/overwrite.js';
import { Restorer } from '../restore/restorer.js';
import type { RestoreItem, RestoreStats } from '../restore/restore-stats.js';
import { RESTORE_SELECTION_OPTIONS, restoreFilter } from '../selection/options.js';
import { RestorePool, restoreWorkerCount } from '../restore/worker-pool.js';
import { EXIT, KeepError } from '@keep/core';
import { incompleteOf, RestoreIncomplete, RestoreInterrupted } from '../restore/restore-interrupt.js';
import { whileInterruptible } from '../terminal/interruptible.js';
import { allowUnauthenticated, selectSnapshot } from './select.js';

const USAGE =
  'usage: keep restore SNAPSHOT|latest --target DIR [--at TIME] [--include PATTERN]... [--exclude PATTERN]... ' +
  '[--overwrite always|if-changed|if-newer|never] [--delete] [--dry-run] [--verify] [-v] [--allow-unauthenticated]';

/** restic's verbose line: `restored  /path with size 1.0 KiB` */
function itemLine(i: RestoreItem): string {
  return `${i.action.padEnd(9)} ${i.item}${i.size ? ` with size ${formatBytes(i.size)}` : ''}`;
}

function summaryLines(st: RestoreStats): string[] {
  const would = st.dry_run ? 'would be ' : '';
  const lines = [
    `${st.files_restored} files ${would}restored (${formatBytes(st.bytes_restored)}), ${st.files_skipped} ${would}skipped (${formatBytes(st.bytes_skipped)}), ${st.files_deleted} ${would}deleted, of ${st.total_files} files (${formatBytes(st.total_bytes)})`,
  ];
  if (st.files_verified !== undefined) lines.push(`verified ${st.files_verified} files${st.verify_failures?.length ? `: ${st.verify_failures.length} differ from the snapshot` : ''}`);
  return lines;
}

/** The lines an interrupted restore ends with on a terminal: what is incomplete, and how to finish. */
function interruptedLines(target: string, left: RestoreIncomplete): string[] {
  const lines = [`keep: interrupted: ${left.files_incomplete} file(s) (${formatBytes(left.bytes_incomplete)}) not restored to ${target}`];
  if (left.partial_files_removed.length) lines.push(`partial files removed (never left under their names): ${left.partial_files_removed.join(', ')}`);
  lines.push('run the same restore with --overwrite if-changed to finish it: what is already right is skipped, not read again');
  return lines;
}

export async function restoreCommand(argv: string[]): Promise<void | number> {
  const { values, positionals } = parse(argv, {
    target: { type: 'string', short: 't' },
    source: { type: 'string' },
    at: { type: 'string' },
    ...RESTORE_SELECTION_OPTIONS,
    overwrite: { type: 'string' },
    delete: { type: 'boolean' },
    'dry-run': { type: 'boolean' },
    verify: { type: 'boolean' },
    verbose: { type: 'boolean', short: 'v', multiple: true },
    'allow-unauthenticated': { type: 'boolean' },
    ...PROGRESS_OPTIONS,
  });
  if (!values.target) throw new KeepError('INVALID_ARGUMENT', USAGE);
  if (positionals.length > 1) throw new KeepError('INVALID_ARGUMENT', 'restore takes one snapshot');
  const overwrite = parseOverwrite(values.overwrite);
  const dryRun = !!values['dry-run'];
  if (dryRun && values.verify) throw new KeepError('INVALID_ARGUMENT', '--verify reads back what a restore wrote; a --dry-run writes nothing');
  const filter = restoreFilter(values);
  // restic's guard: --delete into / removes the whole system unless --include / --exclude narrow it.
  if (values.delete && path.resolve(values.target) === '/' && !filter) throw new KeepError('INVALID_ARGUMENT', '--delete with --target / needs --include or --exclude');
  const verbose = (values.verbose?.length ?? 0) > 0;
  // --json: restic's JSON lines (status while it runs, with -v verbose_status for each entry, then the summary).
  const onItem = !verbose ? undefined : values.json ? (i: RestoreItem) => console.log(JSON.stringify({ message_type: 'verbose_status', ...i })) : (i: RestoreItem) => console.log(itemLine(i));
  // While scrypt runs, the snapshot is chosen (a keyless listing) and the restore workers load their code.
  const pool = dryRun ? undefined : new RestorePool(restoreWorkerCount(), process.getuid?.() === 0);
  try {
    const { repo, meanwhile: list } = await openRepositoryWhile((conn) => conn.snapshots(values.source ? { source: values.source } : {}));
    let progress: RestoreProgress | undefined;
    try {
      // With the key: only an authenticated record is restored (select.ts).
      const snap = selectSnapshot(repo.keys, list, positionals[0], { source: values.source, at: values.at, allowUnauthenticated: allowUnauthenticated(values['allow-unauthenticated']) });
      // The snapshot's own source's bytes: its copy of a chunk another source stored first.
      repo.conn.readAs(snap.source);
      const started = processClock().now();
      const report = (progress = new RestoreProgress(progressMode(values), snap, Boolean(filter)));
      const r = new Restorer(repo, {
        target: values.target,
        filter,
        onProgress: (p) => report.update(p),
        onWarning: (w) => report.warn(Boolean(values.json), w),
        pool,
        overwrite,
        delete: values.delete,
        dryRun,
        verify: values.verify,
        onItem: onItem && ((i) => (report.interrupt(), onItem(i))),
        plan: true,
        // Status from the first line on with the tree-counted total: percent and ETA are never guesses.
        onPlan: () => report.start(() => r.stats, () => r),
      });
      let st;
      try {
        // Ctrl-C stops cleanly: what is in flight settles, partial files are removed, exit 130 with what is left.
        st = await whileInterruptible(() => r.interrupt(), () => r.run(Buffer.from(snap.root, 'hex'), started, () => processClock().now()));
      } catch (e) {
        if (!(e instanceof RestoreInterrupted)) throw e;
        report.stop();
        const left = incompleteOf(r.plan ?? { files: r.stats.total_files, bytes: r.stats.total_bytes }, r.stats, r.partialRemoved);
        if (values.json) printJsonLine(report.interrupted(snap, values.target!, r.stats, left));
        process.stderr.write(`${interruptedLines(values.target!, left).join('\n')}\n`);
        return EXIT.INTERRUPTED;
      }
      report.finish();
      filter?.checkUsed();
      if (values.json) printJsonLine(report.summary(snap, values.target!, st));
      else {
        const done = dryRun ? `dry run of snapshot ${snap.id.slice(0, 8)} (${snap.time}) to ${values.target}, nothing written` : `restored snapshot ${snap.id.slice(0, 8)} (${snap.time}) to ${values.target}: ${st.files} files, ${st.dirs} dirs, ${st.symlinks} symlinks, ${st.hardlinks} hardlinks, ${formatBytes(st.bytes)} in ${st.duration_s.toFixed(2)} s (${formatRate(st.bytes, st.duration_s)})`;
        console.log([done, ...summaryLines(st)].join('\n'));
      }
      const failed = st.verify_failures ?? [];
      if (failed.length) throw new KeepError('CORRUPT', `--verify: ${failed.length} file(s) in the target differ from the snapshot (first: ${failed[0]})`);
    } finally {
      progress?.stop();
      await repo.conn.close();
    }
  } finally {
    // A wrong passphrase or a missing snapshot never reaches run(), which closes it otherwise.
    await pool?.close();
  }
}
