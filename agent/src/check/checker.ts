import { CheckReport, judgeSnapshots, KeepError, SealPool, Snapshot, toHex } from '@keep/core';
import type { Unlocked } from '../repo/open.js';
import { TreeReader } from '../tree/tree-reader.js';

const READ_CONCURRENCY = 8;

/** A blob found damaged: by the repository's keyless check or by reading it with the key. */
export interface Damage {
  blob: string;
  path?: string;
  error: string;
}

/** What `keep check` reports (its --json document). */
export interface CheckResult {
  ok: boolean;
  /** false when the repository's keyless check needs an admin token (keepd) */
  structural: boolean;
  snapshots: number;
  packs: number;
  blobs: number;
  read_data_percent: number;
  blobs_read: number;
  bytes_read: number;
  orphan_packs: number;
  /** snapshot records without a MAC (written before records were authenticated): not errors, not trusted by restore */
  unauthenticated_snapshots: number;
  unfinished_packs: number;
  errors: string[];
  damaged_blobs: Damage[];
}

/** Blobs read with the key so far, for a progress line. */
export type CheckProgress = (blobsRead: number, bytesRead: number) => void;

/**
 * The keyed check: the repository's keyless structure check (index against
 * packs, trailers, closure), every snapshot record's MAC, and, when asked (or
 * when the structure check needs an admin token the agent lacks), every tree
 * decrypted and `readDataPercent` of the data blobs read and re-hashed.
 */
export async function checkRepository(repo: Unlocked, readDataPercent: number, onProgress: CheckProgress = () => undefined): Promise<CheckResult> {
  const pct = readDataPercent;
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
  let read = { blobs: 0, bytes: 0 };
  if (pct > 0 || !structural) {
    if (!structural) structure.snapshots = snapshots.length;
    read = await readWithKey(repo, snapshots, pct, damage, errors, onProgress);
  }
  return {
    ok: errors.length === 0,
    structural,
    snapshots: structure.snapshots,
    packs: structure.packs,
    blobs: structure.blobs,
    read_data_percent: pct,
    blobs_read: read.blobs,
    bytes_read: read.bytes,
    orphan_packs: structure.orphan_packs.length,
    unauthenticated_snapshots: unauthenticated,
    unfinished_packs: structure.unfinished_packs,
    errors,
    damaged_blobs: damage,
  };
}

/** With the key: decrypt every tree, then every (or a sample of) data blob, and re-hash it. Adds what fails to `damage` and `errors`. */
async function readWithKey(repo: Unlocked, snapshots: Snapshot[], pct: number, damage: Damage[], errors: string[], onProgress: CheckProgress): Promise<{ blobs: number; bytes: number }> {
  const pool = new SealPool(repo.master);
  try {
    let blobsRead = 0;
    let bytesRead = 0;
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
          onProgress(blobsRead, bytesRead);
        } catch (e) {
          note(hex, (e as Error).message, dataBlobs.get(hex));
        }
      }
    };
    await Promise.all(Array.from({ length: READ_CONCURRENCY }, worker));
    return { blobs: blobsRead, bytes: bytesRead };
  } finally {
    await pool.close();
  }
}
