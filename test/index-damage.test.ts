/**
 * A lost or damaged index.mdb (issue 13, item 4). The index is a cache:
 * `keepd rebuild-index` rebuilds it from the packs and snapshot files without
 * ever opening the damaged file, keepd's own state (tokens, source tags,
 * replicas, replication) lives in state.mdb and survives, and blob ownership
 * is derived again from the snapshots. A damaged file is reported in one
 * line, never a crash. Real keepd and keep processes, real LMDB files.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { decodeIndexSegment } from '@keep/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seeded, writeRandom } from './gc-util.js';
import { compareTrees, initRepo, keep, keepJson as keepJsonLocal, restoredPath, tempDirs } from './helpers.js';
import { agentEnv, createToken, Keepd, keepdInit, keepdJson, keepJson, killAllKeepd, runKeep, runKeepd, startKeepd, Token } from './keepd-harness.js';
import { syncOk } from './sync-util.js';

const PAGE = 4096;

type Damage = 'deleted' | 'zeroed meta pages' | 'truncated' | 'random pages';

function damage(file: string, kind: Damage, seed: number): void {
  const size = fs.statSync(file).size;
  if (kind === 'deleted') return fs.rmSync(file);
  if (kind === 'truncated') return fs.truncateSync(file, Math.floor(size / PAGE / 2) * PAGE);
  const fd = fs.openSync(file, 'r+');
  try {
    if (kind === 'zeroed meta pages') fs.writeSync(fd, Buffer.alloc(2 * PAGE), 0, 2 * PAGE, 0);
    else {
      // Every other page past the two meta pages gets random bytes: the B-tree is garbage, the meta pages look fine.
      const r = seeded(seed);
      for (let p = 2; p < size / PAGE; p++) if (r() < 0.5) fs.writeSync(fd, crypto.randomBytes(PAGE), 0, PAGE, p * PAGE);
    }
  } finally {
    fs.closeSync(fd);
  }
}

describe('keepd survives a lost or damaged index.mdb', () => {
  const tmp = tempDirs();
  let dir: string;
  let data: string;
  let replicaData: string;
  let src: string;
  let keepd: Keepd;
  let agent: Token;
  let replica: Token;
  let admin: Token;
  let replicaId: string;

  beforeAll(async () => {
    dir = tmp.make('keep-index-damage-');
    data = path.join(dir, 'data');
    replicaData = path.join(dir, 'replica');
    src = path.join(dir, 'src');
    for (let i = 0; i < 4; i++) writeRandom(path.join(src, `f${i}.bin`), 400_000 + i);
    fs.writeFileSync(path.join(src, 'small.txt'), 'small\n'.repeat(500));
    await keepdInit(data);
    agent = await createToken(data, 'agent', { sources: ['a'] });
    replica = await createToken(data, 'replica');
    admin = await createToken(data, 'admin');
    keepd = await startKeepd(data);
    await keepJson(['init', '--kdf-cost', '12'], agentEnv(keepd, agent.token));
    await keepJson(['backup', src, '--source', 'a'], agentEnv(keepd, agent.token));
    // A replica pulls once and registers with the primary (its report), and keeps replication state of its own.
    await syncOk(replicaData, keepd.url, replica.token);
    const st = await keepdJson(['status', '--data', data]);
    expect(st.replicas).toHaveLength(1);
    replicaId = st.replicas[0].replica_id;
  });

  afterAll(killAllKeepd);

  it.each<Damage>(['deleted', 'zeroed meta pages', 'truncated', 'random pages'])('index.mdb %s: rebuild-index restores service with every token, ownership and registration', async (kind) => {
    await keepd.stop();
    damage(path.join(data, 'index.mdb'), kind, 7);

    if (kind === 'zeroed meta pages' || kind === 'truncated') {
      // Detected before LMDB maps the file: one clear line, never a crash.
      for (const args of [['status', '--data', data], ['serve', '--data', data, '--listen', '127.0.0.1:0']]) {
        const r = await runKeepd(args, { timeoutMs: 30_000 });
        expect(r.signal, r.stderr).toBeNull();
        expect(r.code, r.stderr).toBe(4);
        expect(r.stderr).toMatch(/^keepd: error: .*index\.mdb is damaged .*run `keepd rebuild-index --data .*`\n$/);
      }
    }

    const rb = await runKeepd(['rebuild-index', '--data', data, '--json'], { timeoutMs: 60_000 });
    expect(rb.signal, rb.stderr).toBeNull();
    expect(rb.code, rb.stderr).toBe(0);
    expect(JSON.parse(rb.stdout).blobs).toBeGreaterThan(4);
    keepd = await startKeepd(data);

    // The agent's scoped token still authenticates and still owns its blobs: it restores...
    const target = path.join(dir, `restore-${kind.replace(/ /g, '-')}`);
    const r = await runKeep(['restore', 'latest', '--source', 'a', '--target', target], agentEnv(keepd, agent.token));
    expect(r.code, r.stderr).toBe(0);
    expect(compareTrees(src, restoredPath(target, src))).toEqual([]);
    // ...and a rerun is told "have it" for what its snapshots reference.
    const again = await keepJson(['backup', src, '--source', 'a'], agentEnv(keepd, agent.token));
    expect(again.bytes_sent).toBeLessThan(100_000);

    const tokens = await keepdJson(['token', 'list', '--data', data]);
    expect(tokens.map((t: { id: string }) => t.id).sort()).toEqual([agent.id, replica.id, admin.id].sort());
    const st = await keepdJson(['status', '--data', data]);
    expect(st.replicas.map((x: { replica_id: string }) => x.replica_id)).toEqual([replicaId]);
    // The replica, pulling again, is still authenticated.
    await syncOk(replicaData, keepd.url, replica.token);
  });

  it("a replica's replication state survives losing its index", async () => {
    fs.rmSync(path.join(replicaData, 'index.mdb'));
    const st = await keepdJson(['status', '--data', replicaData]);
    // One record per upstream address it pulled from (each keepd above listened on a new port).
    expect(st.replication.map((x: { upstream: string }) => x.upstream)).toContain(keepd.url);
    expect(st.snapshots).toBeGreaterThanOrEqual(1);
  });

  it('rebuild-index reads the index segments keepd wrote beside the packs, no pack trailer; a lost segment leaves its packs to their trailers', async () => {
    expect(await keepd.stop()).toEqual({ code: 0, signal: null });
    const segDir = path.join(data, 'index');
    const segments = fs.readdirSync(segDir).filter((n) => n.endsWith('.seg')).sort();
    expect(segments.length).toBeGreaterThan(0);
    const packs = fs.readdirSync(path.join(data, 'packs'), { recursive: true }).filter((n) => String(n).endsWith('.pack')).length;
    fs.rmSync(path.join(data, 'index.mdb'));
    const fromSegments = await keepdJson(['rebuild-index', '--data', data]);
    expect(fromSegments).toMatchObject({ packs, segments: segments.length, damaged_segments: [], packs_from_segments: packs, packs_from_trailers: 0, damaged_packs: [] });

    keepd = await startKeepd(data);
    const target = path.join(dir, 'restore-from-segments');
    const r = await runKeep(['restore', 'latest', '--source', 'a', '--target', target], agentEnv(keepd, agent.token));
    expect(r.code, r.stderr).toBe(0);
    expect(compareTrees(src, restoredPath(target, src))).toEqual([]);
    expect(await keepd.stop()).toEqual({ code: 0, signal: null });

    // Segments are an accelerator only: without one, the packs it named are read by their trailers.
    const lost = segments[0];
    const named = decodeIndexSegment(fs.readFileSync(path.join(segDir, lost)), lost).length;
    expect(named).toBeGreaterThan(0);
    fs.rmSync(path.join(segDir, lost));
    const partly = await keepdJson(['rebuild-index', '--data', data]);
    expect(partly).toMatchObject({ packs, blobs: fromSegments.blobs, segments: segments.length - 1, packs_from_segments: packs - named, packs_from_trailers: named, damaged_packs: [] });
    keepd = await startKeepd(data);
  });
});

describe("an agent's own (embedded) repository with a damaged index", () => {
  const tmp = tempDirs();

  it('is rebuilt aside on open, the damaged file kept next to it, and the snapshots restore', async () => {
    const dir = tmp.make('keep-index-damage-local-');
    const { repo, env } = await initRepo(dir);
    const src = path.join(dir, 'src');
    writeRandom(path.join(src, 'a.bin'), 300_000);
    const b = await keepJsonLocal(['backup', src], { env });
    damage(path.join(repo, 'index.mdb'), 'zeroed meta pages', 1);

    const target = path.join(dir, 'restore');
    const r = await keep(['restore', b.snapshot, '--target', target], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/^keep: warning: index\.mdb was damaged \(page 0 is not a meta page\): rebuilt from the packs \(\d+ blobs\); the damaged file is index\.mdb\.damaged-/m);
    expect(compareTrees(src, restoredPath(target, src))).toEqual([]);
    expect(fs.readdirSync(repo).filter((n) => n.startsWith('index.mdb.damaged-'))).toHaveLength(1);
  });
});
