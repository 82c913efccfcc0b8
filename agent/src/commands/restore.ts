import { processClock } from '@keep/core';
import { parse } from '../cli/args.js';
import { formatBytes, formatRate, printJson, ProgressLine } from '../cli/output.js';
import { openRepositoryWhile } from '../repo/open.js';
import { Restorer } from '../restore/restorer.js';
import { RESTORE_SELECTION_OPTIONS, restoreFilter } from '../selection/options.js';
import { RestorePool, restoreWorkerCount } from '../restore/worker-pool.js';
import { KeepError } from '@keep/core';
import { allowUnauthenticated, selectSnapshot } from './select.js';

export async function restoreCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parse(argv, {
    target: { type: 'string', short: 't' },
    source: { type: 'string' },
    at: { type: 'string' },
    ...RESTORE_SELECTION_OPTIONS,
    'allow-unauthenticated': { type: 'boolean' },
  });
  if (!values.target) throw new KeepError('INVALID_ARGUMENT', 'usage: keep restore SNAPSHOT|latest --target DIR [--at TIME] [--include PATTERN]... [--exclude PATTERN]... [--allow-unauthenticated]');
  if (positionals.length > 1) throw new KeepError('INVALID_ARGUMENT', 'restore takes one snapshot');
  const filter = restoreFilter(values);
  // While scrypt runs, the snapshot is chosen (a keyless listing) and the restore workers load their code.
  const pool = new RestorePool(restoreWorkerCount(), process.getuid?.() === 0);
  try {
    const { repo, meanwhile: list } = await openRepositoryWhile((conn) => conn.snapshots(values.source ? { source: values.source } : {}));
    const progress = new ProgressLine();
    try {
      // With the key: only an authenticated record is restored (select.ts).
      const snap = selectSnapshot(repo.keys, list, positionals[0], { source: values.source, at: values.at, allowUnauthenticated: allowUnauthenticated(values['allow-unauthenticated']) });
      // The snapshot's own source's bytes: its copy of a chunk another source stored first.
      repo.conn.readAs(snap.source);
      const started = processClock().now();
      const r = new Restorer(repo, {
        target: values.target,
        filter,
        onProgress: (p) => progress.update((s) => `${p.files} files  ${formatBytes(p.bytes)}  ${formatRate(p.bytes, s)}  ${p.current ?? ''}`),
        onWarning: (w) => process.stderr.write(`keep: warning: ${w}\n`),
        pool,
      });
      const st = await r.run(Buffer.from(snap.root, 'hex'), started, () => processClock().now());
      progress.done();
      filter?.checkUsed();
      if (values.json) printJson({ snapshot: snap.id, source: snap.source, time: snap.time, target: values.target, ...st });
      else console.log(`restored snapshot ${snap.id.slice(0, 8)} (${snap.time}) to ${values.target}: ${st.files} files, ${st.dirs} dirs, ${st.symlinks} symlinks, ${st.hardlinks} hardlinks, ${formatBytes(st.bytes)} in ${st.duration_s.toFixed(2)} s (${formatRate(st.bytes, st.duration_s)})`);
    } finally {
      progress.done();
      await repo.conn.close();
    }
  } finally {
    // A wrong passphrase or a missing snapshot never reaches run(), which closes it otherwise.
    await pool.close();
  }
}
