/**
 * Issue 6, one-shot replication (`keepd sync`) between two real keepd data
 * directories over loopback gRPC:
 *
 * 1. the first sync of a primary with two snapshots creates the replica (same
 *    repository id, same snapshot ids); the replica restores byte-identical,
 *    opened locally with the passphrase and over gRPC from a keepd serving it
 *    with an agent token of its own, and `keepd check --read-data` passes;
 * 2. a sync after a backup that changed a few KiB moves only the new blobs:
 *    about the primary's bytes_sent for that backup, far below the total;
 * 4. a blob damaged on the primary is refused: the sync exits 4 naming the
 *    blob, the snapshot is not published on the replica, which still checks
 *    clean; once the primary's pack is repaired the next sync completes.
 *
 * The primary uses small chunks (64 KiB average) so "a small change" means a
 * few blobs and the byte accounting is sharp.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compareTrees, flipByte, jsonError, generateTree, MiB, packBlobs, packFiles, prng, restoredPath, tempDirs, TreeInfo } from './helpers.js';
import { agentEnv, createToken, Keepd, keepdJson, keepJson, packBytes, runKeep } from './keepd-harness.js';
import { alive, killAllServing, localSnapshotIds, serveWith, snapshotFiles, status, syncOk, syncOnce } from './sync-util.js';

const PASSWORD = 'replicated passphrase';
const KiB = 1024;

describe('keepd sync: initial, incremental and refused pulls', () => {
  const tmp = tempDirs();
  let dir: string;
  let P: string; // primary data dir
  let R: string; // replica data dir
  let primary: Keepd;
  let env: Record<string, string | undefined>;
  let replicaToken: string;
  let tree: TreeInfo;
  const snaps: any[] = [];

  beforeAll(async () => {
    dir = tmp.make('keep-sync-pull-');
    P = path.join(dir, 'primary');
    R = path.join(dir, 'replica');
    await keepdJson(['init', '--data', P, '--chunk-min', '16K', '--chunk-avg', '64K', '--chunk-max', '256K']);
    const agent = await createToken(P, 'agent', { sources: ['files', 'victim'] });
    replicaToken = (await createToken(P, 'replica')).token;
    primary = await serveWith(P);
    env = agentEnv(primary, agent.token, PASSWORD);
    await keepJson(['init', '--kdf-cost', '12'], env);
    tree = generateTree(path.join(dir, 'src'), { largeFiles: [6 * MiB, 1 * MiB], compressibleSize: 512 * KiB, smallFiles: 60 });
  });

  afterAll(killAllServing);

  it('(1) the first sync creates the replica with the same ids; it restores byte-identical locally and over gRPC and checks clean', async () => {
    alive(primary, 'primary');
    snaps.push(await keepJson(['backup', tree.root, '--source', 'files'], env));
    // Snapshot 1 as the primary restores it: the reference for the replica's copy of it.
    const ref1 = path.join(dir, 'ref1');
    const r0 = await runKeep(['restore', snaps[0].snapshot, '--target', ref1], env);
    expect(r0.code, r0.stderr).toBe(0);
    expect(compareTrees(tree.root, restoredPath(ref1, tree.root))).toEqual([]);

    // A second snapshot: one file grows, one is new.
    fs.appendFileSync(path.join(tree.root, 'many', 'd0', 'e0', 'f0.txt'), 'appended after the first backup\n');
    fs.writeFileSync(path.join(tree.root, 'added.bin'), prng(42, 300 * KiB));
    snaps.push(await keepJson(['backup', tree.root, '--source', 'files'], env));
    expect(snaps[1].parent).toBe(snaps[0].snapshot);

    expect(fs.existsSync(R)).toBe(false);
    const rep = await syncOk(R, primary.url, replicaToken);
    expect(rep.upstream).toBe(primary.url);
    expect(rep.snapshots_synced).toEqual([snaps[0].snapshot, snaps[1].snapshot]);
    expect(rep.snapshots_failed).toEqual([]);
    expect(rep.snapshots_pending).toBe(0);
    expect(rep.lag_s).toBe(0);
    // Every stored byte of the two backups crossed once, nothing more.
    const sent = snaps[0].bytes_sent + snaps[1].bytes_sent;
    expect(rep.bytes_fetched).toBeGreaterThan(sent * 0.98);
    expect(rep.bytes_fetched).toBeLessThanOrEqual(packBytes(P));
    expect(packBytes(R)).toBeGreaterThanOrEqual(rep.bytes_fetched);

    // Same repository, same snapshot ids, as the agent sees them on both sides.
    const [ps, rs] = await Promise.all([status(P), status(R)]);
    expect(rs.repository).toBe(ps.repository);
    expect(rs.snapshots).toBe(2);
    expect(snapshotFiles(R)).toEqual(snapshotFiles(P));
    const ids = (await keepJson(['snapshots'], env)).map((s: any) => s.id);
    expect(await localSnapshotIds(R, PASSWORD)).toEqual(ids);
    expect(ids).toEqual([snaps[0].snapshot, snaps[1].snapshot]);
    // The replica remembers the pull.
    expect(rs.replication).toHaveLength(1);
    expect(rs.replication[0]).toMatchObject({ upstream: primary.url, lag_s: 0, snapshots_pending: 0, bytes_fetched_total: rep.bytes_fetched, state: 'ok' });
    expect(rs.replication[0].last_success).toBeTruthy();
    expect(rs.replication[0].last_error).toBeUndefined();

    // Restore from the replica directory, locally with the passphrase (the wrapped key came along).
    const local = { KEEP_REPO: R, KEEP_PASSWORD: PASSWORD };
    const l2 = path.join(dir, 'replica-local-latest');
    const rl = await runKeep(['restore', 'latest', '--source', 'files', '--target', l2], local);
    expect(rl.code, rl.stderr).toBe(0);
    expect(compareTrees(tree.root, restoredPath(l2, tree.root), { rootMeta: true })).toEqual([]);
    const l1 = path.join(dir, 'replica-local-first');
    const rl1 = await runKeep(['restore', snaps[0].snapshot, '--target', l1], local);
    expect(rl1.code, rl1.stderr).toBe(0);
    expect(compareTrees(restoredPath(ref1, tree.root), restoredPath(l1, tree.root), { rootMeta: true })).toEqual([]);

    // The replica's keyless check reads and re-hashes every blob.
    const c = await keepdJson(['check', '--data', R, '--read-data']);
    expect(c.ok, JSON.stringify(c.errors)).toBe(true);
    expect(c.snapshots).toBe(2);
    expect(c.blobs_read).toBe(c.blobs);

    // Over gRPC from a keepd serving the replica, with an agent token created on the replica.
    const rtok = await createToken(R, 'agent', { sources: ['files'] });
    const replica = await serveWith(R);
    try {
      const renv = agentEnv(replica, rtok.token, PASSWORD);
      expect((await keepJson(['snapshots'], renv)).map((s: any) => s.id)).toEqual(ids);
      const g = path.join(dir, 'replica-grpc');
      const rg = await runKeep(['restore', 'latest', '--source', 'files', '--target', g], renv);
      expect(rg.code, rg.stderr).toBe(0);
      expect(compareTrees(tree.root, restoredPath(g, tree.root), { rootMeta: true })).toEqual([]);
      const g1 = path.join(dir, 'replica-grpc-first');
      const rg1 = await runKeep(['restore', snaps[0].snapshot, '--target', g1], renv);
      expect(rg1.code, rg1.stderr).toBe(0);
      expect(compareTrees(restoredPath(ref1, tree.root), restoredPath(g1, tree.root))).toEqual([]);
    } finally {
      expect(await replica.stop()).toEqual({ code: 0, signal: null });
    }
  });

  it('(2) an incremental sync after a small change moves only the new blobs', async () => {
    alive(primary, 'primary');
    expect(snaps).toHaveLength(2);
    // Rewrite 4 KiB in the middle of the 6 MiB random file.
    const big = path.join(tree.root, tree.large[0]);
    const fd = fs.openSync(big, 'r+');
    fs.writeSync(fd, prng(777, 4 * KiB), 0, 4 * KiB, 3 * MiB + 1234);
    fs.closeSync(fd);
    const s3 = await keepJson(['backup', tree.root, '--source', 'files'], env);
    snaps.push(s3);
    expect(s3.files_changed).toBe(1);
    expect(s3.bytes_sent).toBeGreaterThan(0);
    expect(s3.bytes_sent).toBeLessThan(1 * MiB);

    const total = packBytes(P);
    const replicaBefore = packBytes(R);
    const rep = await syncOk(R, primary.url, replicaToken);
    expect(rep.snapshots_synced).toEqual([s3.snapshot]);
    expect(rep.snapshots_failed).toEqual([]);
    // Only what the backup added crossed: about its bytes_sent, a tiny part of the repository.
    expect(rep.bytes_fetched).toBeLessThan(total / 20);
    expect(rep.bytes_fetched).toBeGreaterThanOrEqual(Math.floor(s3.bytes_sent * 0.8));
    expect(rep.bytes_fetched).toBeLessThanOrEqual(Math.ceil(s3.bytes_sent * 1.25) + 16 * KiB);
    expect(rep.blobs_fetched).toBeGreaterThan(0);
    expect(rep.blobs_fetched).toBeLessThanOrEqual(s3.chunks_new + 40); // new chunks plus the changed path's trees
    expect(rep.blobs_present).toBeGreaterThan(0);
    expect(packBytes(R) - replicaBefore).toBeLessThan(rep.bytes_fetched + 64 * KiB);

    // The new snapshot restores from the replica; a second sync has nothing to do.
    const out = path.join(dir, 'replica-incremental');
    const r = await runKeep(['restore', s3.snapshot, '--target', out], { KEEP_REPO: R, KEEP_PASSWORD: PASSWORD });
    expect(r.code, r.stderr).toBe(0);
    expect(compareTrees(tree.root, restoredPath(out, tree.root), { rootMeta: true })).toEqual([]);
    const again = await syncOk(R, primary.url, replicaToken);
    expect(again).toMatchObject({ snapshots_synced: [], snapshots_failed: [], snapshots_pending: 0, blobs_fetched: 0, bytes_fetched: 0, lag_s: 0 });
  });

  it('(4) a blob damaged on the primary is refused: sync fails naming it, the snapshot is not published, the replica checks clean', async () => {
    alive(primary, 'primary');
    const vsrc = path.join(dir, 'victim');
    fs.mkdirSync(vsrc);
    fs.writeFileSync(path.join(vsrc, 'payload.bin'), prng(9090, 2 * MiB));
    const before = new Set(packFiles(P));
    const v = await keepJson(['backup', vsrc, '--source', 'victim'], env);
    const fresh = packFiles(P).filter((f) => !before.has(f));
    expect(fresh.length).toBeGreaterThan(0);
    // The largest data blob the backup wrote; flip a byte in its middle (ciphertext, on disk).
    const blob = fresh
      .flatMap((f) => packBlobs(f))
      .filter((b) => b.type === 0)
      .sort((a, b) => b.length - a.length)[0];
    expect(blob).toBeDefined();
    const pos = blob.offset + Math.floor(blob.length / 2);
    flipByte(blob.pack, pos);
    try {
      const r = await syncOnce(R, primary.url, replicaToken);
      expect(r.code, r.stdout).toBe(4);
      // One error (under --json, restic's exit_error object) that names the damaged blob and what is wrong with it.
      const message = jsonError(r);
      expect(message).toContain(blob.id);
      expect(message).toMatch(/damaged|corrupt|storage hash/i);
      expect(r.report?.snapshots_synced).toEqual([]);
      expect(r.report?.snapshots_failed).toHaveLength(1);
      expect(r.report?.snapshots_failed[0].id).toBe(v.snapshot);
      expect(r.report?.snapshots_failed[0].error).toContain(blob.id);
      expect(r.report?.snapshots_pending).toBe(1);

      // Not published on the replica; what it has is intact.
      expect(snapshotFiles(R)).not.toContain(v.snapshot);
      expect(await localSnapshotIds(R, PASSWORD)).toEqual(snaps.map((s) => s.snapshot));
      const c = await keepdJson(['check', '--data', R, '--read-data']);
      expect(c.ok, JSON.stringify(c.errors)).toBe(true);
      expect(c.snapshots).toBe(3);
      const rs = await status(R);
      expect(rs.replication[0].state).toBe('error');
      expect(rs.replication[0].last_error).toContain(blob.id);
      expect(rs.replication[0].snapshots_pending).toBe(1);
    } finally {
      flipByte(blob.pack, pos); // repair (the flip is its own inverse)
    }

    // Repaired on the primary: the next sync completes it, and it restores.
    const rep = await syncOk(R, primary.url, replicaToken);
    expect(rep.snapshots_synced).toEqual([v.snapshot]);
    const out = path.join(dir, 'replica-victim');
    const r = await runKeep(['restore', v.snapshot, '--target', out], { KEEP_REPO: R, KEEP_PASSWORD: PASSWORD });
    expect(r.code, r.stderr).toBe(0);
    expect(compareTrees(vsrc, restoredPath(out, vsrc))).toEqual([]);
    const c = await keepdJson(['check', '--data', R, '--read-data']);
    expect(c.ok, JSON.stringify(c.errors)).toBe(true);
    expect((await status(R)).replication[0].state).toBe('ok');
  });
});
