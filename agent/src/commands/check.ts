import { CheckReport, judgeSnapshots, KeepError, SealPool, toHex } from '@keep/core';
import { parse, percent } from '../cli/args.js';
import { formatBytes, printJson, ProgressLine } from '../cli/output.js';
import { openRepository } from '../repo/open.js';
import { TreeReader } from '../tree/tree-reader.js';

const READ_CONCURRENCY = 8;

interface Damage {
  blob: string;
  path?: string;
  error: string;
}

export async function checkCommand(argv: string[]): Promise<void> {
  const { values } = parse(argv, { 'read-data': { type: 'boolean' }, 'read-data-subset': { type: 'string' } });
  if (values['read-data'] && values['read-data-subset']) throw new KeepError('INVALID_ARGUMENT', 'give --read-data or --read-data-subset, not both');
  const pct = values['read-data'] ? 100 : (percent(values['read-data-subset'], '--read-data-subset') ?? 0);
  const repo = await openRepository();
  const pool = new SealPool(repo.master);
  const progress = new ProgressLine();
  try {
    // Keyless structure first: index against packs, trailers, closure. On a
    // keepd that needs an admin token; an agent token still checks its own
    // snapshots by reading them (below), trees always, data as asked.
    let structure: CheckReport;
    let structural = true;
    try {
      structure = await repo.conn.check({});
    } catch (e) {
      if (!(e instanceof KeepError && e.code === 'PERMISSION_DENIED')) throw e;
      structural = false;
      structure = { ok: true, snapshots: 0, packs: 0, blobs: 0, blobs_read: 0, bytes_read: 0, errors: [], damaged_blobs: [], orphan_packs: [], unfinished_packs: 0 };
    }
    const damage: Damage[] = structure.damaged_blobs.map((b) => ({ blob: b, error: structure.errors.find((e) => e.includes(b)) ?? 'damaged' }));
    const errors = [...structure.errors];
    // With the key: every snapshot record's MAC (core snapshot/auth.ts). keepd can check none of this.
    const snapshots = await repo.conn.snapshots();
    const judged = judgeSnapshots(repo.keys.snapshotMacKey, snapshots);
    for (const { snapshot: s, auth } of judged) if (auth.state === 'forged') errors.push(`snapshot ${s.id} (source ${s.source}, ${s.time}) failed authentication: ${auth.reason}`);
    const unauthenticated = judged.filter((j) => j.auth.state === 'unauthenticated').length;
    let blobsRead = 0;
    let bytesRead = 0;
    if (pct > 0 || !structural) {
      // With the key: decrypt every tree, then every (or a sample of) data blob, and re-hash it.
      const trees = new TreeReader(repo);
      const dataBlobs = new Map<string, string>();
      const seenTrees = new Set<string>();
      const known = new Set(damage.map((d) => d.blob));
      const note = (blob: string, error: string, path?: string) => {
        if (known.has(blob)) return;
        known.add(blob);
        damage.push({ blob, path, error });
        errors.push(`blob ${blob}${path ? ` (${path})` : ''}: ${error}`);
      };
      const walk = async (id: Buffer, prefix: string): Promise<void> => {
        const hex = toHex(id);
        if (seenTrees.has(hex)) return;
        seenTrees.add(hex);
        let node;
        try {
          node = await trees.read(id);
          blobsRead++;
        } catch (e) {
          note(hex, (e as Error).message, prefix || '/');
          return;
        }
        for (const e of node.entries) {
          const p = `${prefix}/${e.name.toString()}`;
          if (e.type === 'dir') await walk(TreeReader.subtree(node, e), p);
        }
        node.entries.forEach((e) => {
          if (!e.chunks) return;
          for (let i = e.chunks[0]; i < e.chunks[0] + e.chunks[1]; i++) {
            const h = toHex(node.edges[i].id);
            if (!dataBlobs.has(h)) dataBlobs.set(h, `${prefix}/${e.name.toString()}`);
          }
        });
      };
      if (!structural) structure.snapshots = snapshots.length;
      for (const s of snapshots) await walk(Buffer.from(s.root, 'hex'), '');
      const ids = [...dataBlobs.keys()].filter(() => pct >= 100 || Math.random() * 100 < pct);
      let next = 0;
      const worker = async () => {
        while (next < ids.length) {
          const hex = ids[next++];
          const id = Buffer.from(hex, 'hex');
          try {
            const stored = await repo.conn.getBlob(id);
            await pool.open(id, stored);
            blobsRead++;
            bytesRead += stored.length;
            progress.update(() => `checked ${blobsRead} blobs, ${formatBytes(bytesRead)}`);
          } catch (e) {
            note(hex, (e as Error).message, dataBlobs.get(hex));
          }
        }
      };
      await Promise.all(Array.from({ length: READ_CONCURRENCY }, worker));
    }
    progress.done();
    const report = {
      ok: errors.length === 0,
      /** false when the repository's keyless check needs an admin token (keepd) */
      structural,
      snapshots: structure.snapshots,
      packs: structure.packs,
      blobs: structure.blobs,
      read_data_percent: pct,
      blobs_read: blobsRead,
      bytes_read: bytesRead,
      orphan_packs: structure.orphan_packs.length,
      /** snapshot records without a MAC (written before records were authenticated): not errors, not trusted by restore */
      unauthenticated_snapshots: unauthenticated,
      unfinished_packs: structure.unfinished_packs,
      errors,
      damaged_blobs: damage,
    };
    if (values.json) printJson(report);
    else {
      console.log(`checked ${report.snapshots} snapshots, ${report.packs} packs, ${report.blobs} blobs${pct ? `; read ${blobsRead} blobs (${formatBytes(bytesRead)})` : ''}`);
      for (const e of errors) console.log(`error: ${e}`);
      if (unauthenticated) console.log(`${unauthenticated} snapshot(s) without a MAC (written before snapshot records were authenticated): restore uses them only with --allow-unauthenticated`);
      if (report.orphan_packs) console.log(`${report.orphan_packs} pack(s) not in the index (left by an interrupted write; prune removes them)`);
    }
    if (!report.ok) throw new KeepError('CORRUPT', `check found ${errors.length} problem(s)${damage.length ? `; damaged blob ${damage[0].blob}` : ''}`);
  } finally {
    progress.done();
    await pool.close();
    await repo.conn.close();
  }
}
