import { KeepError } from '@keep/core';
import { parse } from '../terminal/args.js';
import { formatBytes, printJson } from '../terminal/output.js';
import { openRepository } from '../repo/open.js';

export async function statsCommand(argv: string[]): Promise<void> {
  const { values } = parse(argv, { source: { type: 'string' } });
  const repo = await openRepository();
  try {
    // A scoped agent token may not see repository-wide sizes; its own snapshots' totals still show.
    const st = await repo.conn.repoStats().catch((e: Error) => {
      if (e instanceof KeepError && e.code === 'PERMISSION_DENIED') return undefined;
      throw e;
    });
    const snaps = await repo.conn.snapshots(values.source ? { source: values.source } : {});
    const sources = new Map<string, number>();
    for (const s of snaps) sources.set(s.source, s.stats.bytes);
    const totalFileSize = snaps.reduce((n, s) => n + s.stats.bytes, 0);
    const latestSize = [...sources.values()].reduce((n, b) => n + b, 0);
    const out = {
      snapshots: snaps.length,
      sources: sources.size,
      /** what all snapshots would take stored one by one, uncompressed */
      total_file_size: totalFileSize,
      /** the newest snapshot of each source */
      latest_size: latestSize,
      stored_bytes: st?.stored_bytes ?? null,
      blobs: st?.blobs ?? null,
      packs: st?.packs ?? null,
      /** total_file_size / stored_bytes: what dedup and compression save together */
      space_saving_ratio: st && st.stored_bytes > 0 ? totalFileSize / st.stored_bytes : null,
    };
    if (values.json) printJson(out);
    else {
      console.log(`Snapshots:        ${out.snapshots} (${out.sources} sources)`);
      console.log(`Total file size:  ${formatBytes(out.total_file_size)} (newest per source: ${formatBytes(out.latest_size)})`);
      console.log(out.stored_bytes === null ? 'Stored:           (repository-wide sizes need an admin token)' : `Stored:           ${formatBytes(out.stored_bytes)} in ${out.blobs} blobs, ${out.packs} packs`);
      console.log(`Saving ratio:     ${out.space_saving_ratio ? out.space_saving_ratio.toFixed(2) + 'x' : '-'}`);
    }
  } finally {
    await repo.conn.close();
  }
}
