import { KeepError } from '@keep/core';
import { checkRepository } from '../check/checker.js';
import { parse, percent } from '../terminal/args.js';
import { formatBytes, printJson, ProgressLine } from '../terminal/output.js';
import { openRepository } from '../repo/open.js';

export async function checkCommand(argv: string[]): Promise<void> {
  const { values } = parse(argv, { 'read-data': { type: 'boolean' }, 'read-data-subset': { type: 'string' } });
  if (values['read-data'] && values['read-data-subset']) throw new KeepError('INVALID_ARGUMENT', 'give --read-data or --read-data-subset, not both');
  const pct = values['read-data'] ? 100 : (percent(values['read-data-subset'], '--read-data-subset') ?? 0);
  const repo = await openRepository();
  const progress = new ProgressLine();
  try {
    const report = await checkRepository(repo, pct, (blobs, bytes) => progress.update(() => `checked ${blobs} blobs, ${formatBytes(bytes)}`));
    progress.done();
    const { errors, damaged_blobs: damage } = report;
    if (values.json) printJson(report);
    else {
      console.log(`checked ${report.snapshots} snapshots, ${report.packs} packs, ${report.blobs} blobs${pct ? `; read ${report.blobs_read} blobs (${formatBytes(report.bytes_read)})` : ''}`);
      for (const e of errors) console.log(`error: ${e}`);
      if (report.unauthenticated_snapshots) console.log(`${report.unauthenticated_snapshots} snapshot(s) without a MAC (written before snapshot records were authenticated): restore uses them only with --allow-unauthenticated`);
      if (report.orphan_packs) console.log(`${report.orphan_packs} pack(s) not in the index (left by an interrupted write; prune removes them)`);
    }
    if (!report.ok) throw new KeepError('CORRUPT', `check found ${errors.length} problem(s)${damage.length ? `; damaged blob ${damage[0].blob}` : ''}`);
  } finally {
    progress.done();
    await repo.conn.close();
  }
}
