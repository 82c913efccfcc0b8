/**
 * Issue 6, continuous replication with three real keepd processes:
 * a primary P, a replica A pulling from P (`keepd serve --upstream P`) and a
 * replica B pulling from A (chained). Both replicas pull every 60 s only, so
 * anything that arrives within seconds came through the commit notifications
 * (WatchCommits) that P, and A in turn, send.
 *
 * 5. after a backup both replicas hold the snapshot within a few seconds
 *    (`keepd status --json`: lag 0, same snapshots), P lists A as a reporting
 *    replica and A lists B, and /metrics shows keep_replication_lag_seconds;
 * 6. synchronous mode (P runs with --sync-replicas 1 --sync-timeout 20): a
 *    `keep backup --tier critical` returns only once A holds the snapshot; with
 *    no replica running and --sync-timeout 2 a critical backup fails with the
 *    synchronous-mode error while a non-critical one succeeds;
 * 7. failover: with P stopped, KEEP_REPO="grpc://P (dead),grpc://A" restores
 *    byte-identical from A.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compareTrees, generateTree, jsonError, MiB, prng, restoredPath, tempDirs, TreeInfo } from './helpers.js';
import { agentEnv, createToken, Keepd, keepdInit, keepJson, runKeep } from './keepd-harness.js';
import { alive, eventually, killAllServing, metricValue, scrape, serveWith, snapshotFiles, status, syncOk } from './sync-util.js';

const PASSWORD = 'continuous passphrase';

describe('continuous replication: primary -> replica A -> replica B', () => {
  const tmp = tempDirs();
  let dir: string;
  let P: string;
  let A: string;
  let B: string;
  let primary: Keepd;
  let replicaA: Keepd;
  let replicaB: Keepd;
  let agentP: string;
  let agentA: string;
  let replicaTokenP: string;
  let env: Record<string, string | undefined>;
  let tree: TreeInfo;
  let crit: string;
  let latestFiles: string;

  const backup = (source: string, root: string, extra: string[] = []) => keepJson(['backup', root, '--source', source, ...extra], env);
  const replicationOf = (s: any, upstream: string) => (s.replication as any[]).find((r) => r.upstream === upstream);

  beforeAll(async () => {
    dir = tmp.make('keep-sync-cont-');
    P = path.join(dir, 'primary');
    A = path.join(dir, 'replica-a');
    B = path.join(dir, 'replica-b');
    await keepdInit(P);
    agentP = (await createToken(P, 'agent', { sources: ['files', 'crit'] })).token;
    replicaTokenP = (await createToken(P, 'replica')).token;
    primary = await serveWith(P, ['--sync-replicas', '1', '--sync-timeout', '20']);
    env = agentEnv(primary, agentP, PASSWORD);
    await keepJson(['init', '--kdf-cost', '12'], env);
    tree = generateTree(path.join(dir, 'src'), { largeFiles: [2 * MiB], compressibleSize: 512 * 1024, smallFiles: 40 });
    crit = path.join(dir, 'crit');
    fs.mkdirSync(crit);
    fs.writeFileSync(path.join(crit, 'ledger.db'), prng(5, 256 * 1024));
    const s0 = await backup('files', tree.root);
    latestFiles = s0.snapshot;

    // A: created by a one-shot sync, then served, pulling from P.
    expect((await syncOk(A, primary.url, replicaTokenP)).snapshots_synced).toEqual([s0.snapshot]);
    const replicaTokenA = (await createToken(A, 'replica')).token;
    agentA = (await createToken(A, 'agent', { sources: ['files', 'crit'] })).token;
    replicaA = await serveWith(A, ['--upstream', primary.url, '--sync-interval', '60'], { KEEP_UPSTREAM_TOKEN: replicaTokenP });
    // B: created from A, then served, pulling from A.
    expect((await syncOk(B, replicaA.url, replicaTokenA)).snapshots_synced).toEqual([s0.snapshot]);
    replicaB = await serveWith(B, ['--upstream', replicaA.url, '--sync-interval', '60'], { KEEP_UPSTREAM_TOKEN: replicaTokenA });

    // Each replica has pulled once and reported to its upstream: its commit watch is open.
    const idA = fs.readFileSync(path.join(A, 'replica-id'), 'utf8').trim();
    const idB = fs.readFileSync(path.join(B, 'replica-id'), 'utf8').trim();
    await eventually(() => status(P), (s) => s.replicas.some((r: any) => r.replica_id === idA), 15_000);
    await eventually(() => status(A), (s) => s.replicas.some((r: any) => r.replica_id === idB), 15_000);
  });

  afterAll(killAllServing);

  it('(5) a backup reaches both replicas within seconds; status and metrics show it', async () => {
    fs.writeFileSync(path.join(tree.root, 'added-later.bin'), prng(77, 700 * 1024));
    fs.appendFileSync(path.join(tree.root, 'with space.txt'), 'changed\n');
    fs.utimesSync(path.join(tree.root, 'with space.txt'), 1_600_000_000, 1_500_000_100.5);
    const s1 = await backup('files', tree.root);
    latestFiles = s1.snapshot;
    const t0 = Date.now();

    // Both hold it, as their status reports: lag 0, nothing pending, their newest is the primary's.
    const [a, b] = await Promise.all([
      eventually(() => status(A), (s) => replicationOf(s, primary.url)?.local_newest === s1.time && replicationOf(s, primary.url)?.lag_s === 0, 15_000),
      eventually(() => status(B), (s) => replicationOf(s, replicaA.url)?.local_newest === s1.time && replicationOf(s, replicaA.url)?.lag_s === 0, 15_000),
    ]);
    const ms = Date.now() - t0;
    expect(ms, 'both replicas should hold the snapshot within a few seconds (the pull interval is 60 s)').toBeLessThan(10_000);
    for (const [s, up] of [
      [a.value, primary.url],
      [b.value, replicaA.url],
    ] as const) {
      const r = replicationOf(s, up);
      expect(r).toMatchObject({ lag_s: 0, snapshots_pending: 0, primary_newest: s1.time, local_newest: s1.time, state: 'ok' });
      expect(r.last_error).toBeUndefined();
      expect(r.bytes_fetched_total).toBeGreaterThan(700 * 1024);
      expect(s.snapshots).toBe(2);
    }
    expect(snapshotFiles(A)).toEqual(snapshotFiles(P));
    expect(snapshotFiles(B)).toEqual(snapshotFiles(P));

    // The primary lists A among its replicas, caught up; A lists B.
    const idA = fs.readFileSync(path.join(A, 'replica-id'), 'utf8').trim();
    const idB = fs.readFileSync(path.join(B, 'replica-id'), 'utf8').trim();
    const ps = await eventually(() => status(P), (s) => s.replicas.some((r: any) => r.replica_id === idA && r.newest_time === s1.time), 5_000);
    expect(ps.value.replicas.find((r: any) => r.replica_id === idA)).toMatchObject({ lag_s: 0, state: 'ok' });
    expect(Date.now() - Date.parse(ps.value.replicas.find((r: any) => r.replica_id === idA).last_report)).toBeLessThan(60_000);
    const as = await eventually(() => status(A), (s) => s.replicas.some((r: any) => r.replica_id === idB && r.newest_time === s1.time), 5_000);
    expect(as.value.replicas.find((r: any) => r.replica_id === idB)).toMatchObject({ lag_s: 0, state: 'ok' });

    // Prometheus on each replica: lag 0, the pulled bytes counted.
    for (const k of [replicaA, replicaB]) {
      expect(k.metricsPort).toBeGreaterThan(0);
      const page = await scrape(k.metricsPort!);
      expect(page).toMatch(/^# (HELP|TYPE) keep_replication_lag_seconds/m);
      expect(metricValue(page, 'keep_replication_lag_seconds')).toBe(0);
      expect(metricValue(page, 'keep_replication_snapshots_pending')).toBe(0);
      expect(metricValue(page, 'keep_replication_bytes_total')).toBeGreaterThan(700 * 1024);
    }
    alive(primary, 'primary');
    alive(replicaA, 'replica A');
    alive(replicaB, 'replica B');
  });

  it('(6a) synchronous mode: a critical backup returns only once the replica holds it', async () => {
    alive(replicaA, 'replica A');
    fs.writeFileSync(path.join(crit, 'ledger.db'), prng(6, 256 * 1024));
    const c = await backup('crit', crit, ['--tier', 'critical']);
    // Right after the backup returned, the replica lists the snapshot.
    expect(snapshotFiles(A)).toContain(c.snapshot);
    const onA = await keepJson(['snapshots', '--source', 'crit'], agentEnv(replicaA, agentA, PASSWORD));
    expect(onA.map((s: any) => s.id)).toContain(c.snapshot);
    // The primary's log says the commit waited for the replica.
    const waited = primary.output().split('\n').filter((l) => l.includes(c.snapshot) && l.includes('snapshot replicated (synchronous)'));
    expect(waited, primary.output().slice(-2000)).toHaveLength(1);
    expect(JSON.parse(waited[0]).replicas).toBe(1);
    // It restores from the replica.
    const out = path.join(dir, 'crit-from-a');
    const r = await runKeep(['restore', c.snapshot, '--target', out], agentEnv(replicaA, agentA, PASSWORD));
    expect(r.code, r.stderr).toBe(0);
    expect(compareTrees(crit, restoredPath(out, crit))).toEqual([]);
  });

  it('(7) failover: with the primary stopped, KEEP_REPO=dead primary,replica restores byte-identical from the replica', async () => {
    const deadPort = primary.port;
    // The primary goes down hard (an outage). (A SIGTERM would take SHUTDOWN_DRAIN_MS, 30 s: keepd's
    // drain waits for A's WatchCommits stream, which only ends when the replica hangs up.)
    expect(await primary.stop('SIGKILL')).toEqual({ code: null, signal: 'SIGKILL' });
    const failover = { KEEP_REPO: `grpc://127.0.0.1:${deadPort},${replicaA.url}`, KEEP_TOKEN: agentA, KEEP_PASSWORD: PASSWORD };
    const ids = (await keepJson(['snapshots', '--source', 'files'], failover)).map((s: any) => s.id);
    expect(ids[ids.length - 1]).toBe(latestFiles);
    const out = path.join(dir, 'failover');
    const r = await runKeep(['restore', 'latest', '--source', 'files', '--target', out], failover);
    expect(r.code, r.stderr).toBe(0);
    expect(compareTrees(tree.root, restoredPath(out, tree.root), { rootMeta: true })).toEqual([]);
    // The dead primary alone: a clear "unavailable", not a hang.
    const alone = await runKeep(['snapshots'], { ...failover, KEEP_REPO: `grpc://127.0.0.1:${deadPort}` }, { timeoutMs: 30_000 });
    expect(alone.code).not.toBe(0);
    expect(alone.stderr).toMatch(/cannot reach|unavailable|ECONNREFUSED/i);
  });

  it('(6b) with no replica running and --sync-timeout 2, a critical backup fails clearly; a non-critical one succeeds', async () => {
    expect(await replicaB.stop()).toEqual({ code: 0, signal: null });
    expect(await replicaA.stop()).toEqual({ code: 0, signal: null });
    primary = await serveWith(P, ['--sync-replicas', '1', '--sync-timeout', '2']);
    env = agentEnv(primary, agentP, PASSWORD);
    const before = snapshotFiles(P);

    fs.writeFileSync(path.join(crit, 'ledger.db'), prng(7, 256 * 1024));
    const t0 = Date.now();
    const r = await runKeep(['backup', crit, '--source', 'crit', '--tier', 'critical', '--json'], env, { timeoutMs: 30_000 });
    const took = Date.now() - t0;
    expect(r.code, r.stdout).not.toBe(0);
    const lines = r.stderr.split('\n').filter(Boolean);
    expect(lines, r.stderr).toHaveLength(1);
    expect(jsonError(r)).toMatch(/snapshot [0-9a-f]{32} is committed on the primary, but 0 of 1 replica\(s\) hold it after 2 s \(synchronous mode\)/);
    expect(took).toBeGreaterThanOrEqual(2_000);
    expect(took).toBeLessThan(20_000);
    // As the message says, the snapshot is committed on the primary.
    const id = /snapshot ([0-9a-f]{32})/.exec(lines[0])![1];
    expect(snapshotFiles(P)).toEqual([...before, id].sort());

    fs.appendFileSync(path.join(tree.root, 'added-later.bin'), 'one more line\n');
    const n = await backup('files', tree.root);
    expect(n.snapshot).toMatch(/^[0-9a-f]{32}$/);
    expect(snapshotFiles(P)).toContain(n.snapshot);
    alive(primary, 'primary');
  });
});
