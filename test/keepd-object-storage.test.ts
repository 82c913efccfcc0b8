/**
 * keepd keeping its repository in a bucket on a real Ceph RADOS Gateway
 * (test/rgw-harness.ts, one per file): `keepd init --store s3://...` records
 * the bucket in the data directory (never the credentials, which come from
 * the AWS environment variables); packs, snapshot records, key files and the
 * config live in the bucket, the LMDB index and state stay local. A backup
 * and restore over gRPC, a second writer refused by the writer lease,
 * `keepd check --read-data`, `keepd rebuild-index` from the index segments in
 * the bucket (no pack trailer read) after the local index is deleted, kill -9 during an upload, and
 * forget + prune deleting from the bucket. Replication across backends:
 * `keepd sync` from the keepd on the bucket to a local replica, and from a
 * local keepd to a replica kept in another prefix of the bucket (`keepd sync
 * --store`), which then follows with `keepd serve --upstream`. Pack
 * deletions wait out the deletion delay; a prune while a backup's session is
 * open, and one killed with SIGKILL after its repack, lose nothing.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { listAll, S3ObjectStore } from '@keep/core/store';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compareTrees, generateTree, MiB, restoredPath, tempDirs, type TreeInfo } from './helpers.js';
import { syncOk } from './sync-util.js';
import { manifest, restoreManifest } from './gc-util.js';
import { agentEnv, createToken, type Keepd, KEEPD_BIN, keepdJson, keepJson, killAllKeepd, metric, runKeep, runKeepd, scrape, start, startKeep, startKeepd, waitFor } from './keepd-harness.js';
import { type Rgw, rgwUnavailable, startRgw } from './rgw-harness.js';

const RGW_START_MS = 240_000;
/** a loaded CI machine: uploads to the gateway, restores, a rebuild */
const TEST_MS = 300_000;
const BUCKET = 'keep-e2e';
const PREFIX = 'site-a/repo';
/** the replica of a local keepd, in the same bucket */
const REPLICA_PREFIX = 'site-b/replica';
/** a repository pruned while it backs up */
const GC_PREFIX = 'site-c/gc';
const PASSWORD = 'keepd on object storage';
const unavailable = rgwUnavailable();

describe.skipIf(unavailable !== undefined)(`keepd on a Ceph RGW bucket${unavailable ? ` (${unavailable})` : ''}`, () => {
  const tmp = tempDirs();
  let rgw: Rgw;
  let bucket: S3ObjectStore;
  let awsEnv: Record<string, string>;
  let dir: string;
  let data: string;
  let keepd: Keepd;
  let env: Record<string, string | undefined>;
  let tree: TreeInfo;
  let snapshot: string;
  /** the kill -9 test's directory and its snapshot: the one left after forget */
  let big: string;
  let bigSnapshot: string;
  const keysUnder = async (prefix: string) => {
    const keys: string[] = [];
    for await (const o of listAll(bucket, prefix)) keys.push(o.key);
    return keys;
  };

  beforeAll(async () => {
    rgw = await startRgw();
    bucket = new S3ObjectStore({ bucket: BUCKET, prefix: `${PREFIX}/`, endpoint: rgw.endpoint, forcePathStyle: true, requestChecksumCalculation: 'WHEN_REQUIRED', credentials: { accessKeyId: rgw.accessKeyId, secretAccessKey: rgw.secretAccessKey } });
    await bucket.createBucketIfMissing();
    awsEnv = {
      AWS_ENDPOINT_URL: rgw.endpoint,
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: rgw.accessKeyId,
      AWS_SECRET_ACCESS_KEY: rgw.secretAccessKey,
      AWS_REQUEST_CHECKSUM_CALCULATION: 'WHEN_REQUIRED',
      AWS_RESPONSE_CHECKSUM_VALIDATION: 'WHEN_REQUIRED',
    };
    // every keepd this file starts (the harness's token helper too) reads them from its environment
    Object.assign(process.env, awsEnv);
    dir = tmp.make('keep-keepd-s3-');
    data = path.join(dir, 'data');
    tree = generateTree(path.join(dir, 'src'), { largeFiles: [3 * MiB, 1 * MiB + 4321], compressibleSize: 1 * MiB, smallFiles: 80 });
  }, RGW_START_MS);

  afterAll(async () => {
    for (const k of Object.keys(awsEnv ?? {})) delete process.env[k];
    await killAllKeepd();
    await bucket?.close();
    await rgw?.stop();
  }, 60_000);

  it('keepd init --store records the bucket, never the credentials, and puts the config there', async () => {
    const init = await keepdJson(['init', '--data', data, '--store', `s3://${BUCKET}/${PREFIX}`, '--s3-path-style'], { env: awsEnv });
    expect(init.store).toBe(`s3://${BUCKET}/${PREFIX}`);
    const record = fs.readFileSync(path.join(data, 'store.json'), 'utf8');
    expect(JSON.parse(record)).toMatchObject({ v: 1, url: `s3://${BUCKET}/${PREFIX}`, endpoint: rgw.endpoint, pathStyle: true });
    expect(record).not.toContain(rgw.secretAccessKey);
    expect(record).not.toContain(rgw.accessKeyId);
    const config = await bucket.get('config.json');
    expect(config.bytes.toString()).toBe(fs.readFileSync(path.join(data, 'config.json'), 'utf8'));
    expect(JSON.parse(config.bytes.toString()).id).toBe(init.repository);

    // A second repository in the same prefix is refused, and leaves no store.json behind.
    const other = path.join(dir, 'other');
    const again = await runKeepd(['init', '--data', other, '--store', `s3://${BUCKET}/${PREFIX}`, '--s3-path-style'], { env: awsEnv });
    expect(again.code, again.stderr).not.toBe(0);
    expect(again.stderr).toMatch(/already holds a repository/);
    expect(fs.existsSync(path.join(other, 'store.json'))).toBe(false);
  }, TEST_MS);

  it('backup and restore over gRPC: packs, snapshot records and key files land in the bucket, not in the data directory', async () => {
    const agent = await createToken(data, 'agent', { sources: ['files'] });
    keepd = await startKeepd(data, { env: awsEnv, metrics: true });
    env = agentEnv(keepd, agent.token, PASSWORD);
    await keepJson(['init', '--kdf-cost', '12'], env);
    const first = await keepJson(['backup', tree.root, '--source', 'files'], env);
    expect(first.files_new).toBe(tree.files);
    snapshot = first.snapshot;

    const packs = await keysUnder('packs/');
    expect(packs.length).toBeGreaterThan(0);
    for (const k of packs) expect(k).toMatch(/^packs\/[0-9a-f]{2}\/[0-9a-f]{32}\.pack$/);
    expect(await keysUnder('snapshots/')).toEqual([`snapshots/${snapshot}.json`]);
    expect((await keysUnder('keys/')).length).toBe(1);
    expect(await keysUnder('writer.lease')).toEqual(['writer.lease']);
    const localFiles = (sub: string) => fs.readdirSync(path.join(data, sub), { recursive: true }).filter((n) => fs.statSync(path.join(data, sub, String(n))).isFile());
    expect(localFiles('packs')).toEqual([]);
    expect(localFiles('snapshots')).toEqual([]);
    expect(localFiles('keys')).toEqual([]);
    // The commit started an index segment beside the packs (index/segment-format.ts), in the bucket too, without waiting for it.
    await waitFor(async () => (await keysUnder('index/')).length > 0, 60_000, 100);
    const segments = await keysUnder('index/');
    expect(segments).toHaveLength(1);
    expect(segments[0]).toMatch(/^index\/[0-9]{15}-[0-9a-f]{16}\.seg$/);
    expect(localFiles('index')).toEqual([]);

    const target = path.join(dir, 'restore-1');
    const r = await runKeep(['restore', 'latest', '--source', 'files', '--target', target], env);
    expect(r.code, r.stderr).toBe(0);
    expect(compareTrees(tree.root, restoredPath(target, tree.root), { rootMeta: true })).toEqual([]);

    // /metrics counts the requests per operation: every pack went up in one put, the restore read by ranged gets.
    const text = await scrape(keepd);
    let packBytes = 0;
    for await (const o of listAll(bucket, 'packs/')) packBytes += o.size;
    expect(metric(text, 'keep_store_requests_total{op="put"}')).toBeGreaterThanOrEqual(packs.length + 2);
    expect(metric(text, 'keep_store_bytes_total{op="put"}')).toBeGreaterThanOrEqual(packBytes);
    expect(metric(text, 'keep_store_requests_total{op="get"}')).toBeGreaterThan(0);
    expect(metric(text, 'keep_store_bytes_total{op="get"}')).toBeGreaterThan(tree.bytes / 2);
    expect(metric(text, 'keep_store_request_errors_total{op="put"}')).toBe(0);
    expect(metric(text, 'keep_store_request_seconds_total{op="get"}')).toBeGreaterThan(0);
    // the bucket's size, which no figure of the local disk shows
    expect(metric(text, 'keep_repository_stored_bytes')).toBe(packBytes);
  }, TEST_MS);

  it('a second keepd on the same prefix is refused while the first holds the writer lease, and gets it once the first stops', async () => {
    const second = path.join(dir, 'second');
    fs.mkdirSync(second);
    for (const f of ['config.json', 'store.json']) fs.copyFileSync(path.join(data, f), path.join(second, f));
    const refused = await runKeepd(['serve', '--data', second, '--listen', '127.0.0.1:0'], { env: awsEnv, timeoutMs: 60_000 });
    expect(refused.code, refused.stderr).toBe(11); // LOCKED
    expect(refused.stderr).toMatch(/written by another keepd/);
    // One-shot commands that delete from the bucket are fenced too: another data directory's (another host's) prune or forget is refused...
    for (const cmd of [['prune'], ['forget', '--keep-last', '1', '--group-by', 'source']]) {
      const r = await runKeepd([...cmd, '--data', second], { env: awsEnv, timeoutMs: 60_000 });
      expect(r.code, r.stderr).toBe(11);
      expect(r.stderr).toMatch(/written by another keepd \(keepd serve on /);
    }
    // ...while a prune beside the serving keepd, on its own data directory and index, works under its lease.
    const beside = await keepdJson(['prune', '--data', data], { env: awsEnv });
    expect(beside.packs_deleted).toBe(0);

    expect(await keepd.stop()).toEqual({ code: 0, signal: null });
    const taken = await startKeepd(second, { env: awsEnv });
    expect(await taken.stop()).toEqual({ code: 0, signal: null });
  }, TEST_MS);

  it('kill -9 of keepd during an upload: the restarted keepd takes its lease back at once, the rerun finishes, the restore is identical', async () => {
    keepd = await startKeepd(data, { env: awsEnv });
    env = agentEnv(keepd, env.KEEP_TOKEN, PASSWORD);
    // More than two packs' worth (packs close at 16 MiB), so some reach the bucket before the commit.
    big = path.join(dir, 'big');
    fs.mkdirSync(big);
    for (let i = 0; i < 3; i++) fs.writeFileSync(path.join(big, `part-${i}.bin`), crypto.randomBytes(14 * MiB));
    const packsBefore = (await keysUnder('packs/')).length;
    const run = startKeep(['backup', big, '--source', 'files', '--json'], env);
    let ended = false;
    void run.result.then(() => (ended = true));
    await waitFor(async () => ended || (await keysUnder('packs/')).length > packsBefore, 180_000, 200);
    expect(ended, 'the backup was still uploading when keepd was killed').toBe(false);
    await keepd.stop('SIGKILL');
    const cut = await run.result;
    expect(cut.code).not.toBe(0);

    keepd = await startKeepd(data, { env: awsEnv });
    env = agentEnv(keepd, env.KEEP_TOKEN, PASSWORD);
    const rerun = await keepJson(['backup', big, '--source', 'files'], env);
    bigSnapshot = rerun.snapshot;
    expect(rerun.files_new + rerun.files_changed).toBe(3);
    const target = path.join(dir, 'restore-big');
    const r = await runKeep(['restore', rerun.snapshot, '--target', target], env);
    expect(r.code, r.stderr).toBe(0);
    expect(compareTrees(big, restoredPath(target, big))).toEqual([]);
    expect(await keepd.stop()).toEqual({ code: 0, signal: null });
  }, TEST_MS);

  it('keepd check --read-data reads every blob back from the bucket', async () => {
    const report = await keepdJson(['check', '--data', data, '--read-data'], { env: awsEnv });
    expect(report.ok, JSON.stringify(report.errors)).toBe(true);
    expect(report.snapshots).toBe(2);
    expect(report.packs).toBe((await keysUnder('packs/')).length);
    expect(report.blobs_read).toBe(report.blobs);
    expect(report.blobs).toBeGreaterThan(tree.files);
  }, TEST_MS);

  it('keepd rebuild-index rebuilds the deleted local index from the index segments in the bucket, reading no pack trailer; restore works after', async () => {
    const before = await keepdJson(['check', '--data', data], { env: awsEnv });
    for (const f of fs.readdirSync(data)) if (f.startsWith('index.mdb')) fs.rmSync(path.join(data, f));
    const segments = await keysUnder('index/');
    const rebuilt = await keepdJson(['rebuild-index', '--data', data], { env: awsEnv });
    expect(rebuilt.packs).toBe(before.packs);
    expect(rebuilt.blobs).toBe(before.blobs);
    expect(rebuilt.damaged_packs).toEqual([]);
    // Every pack came from the index segments, the killed keepd's too (the restarted one wrote their segment from
    // state.mdb's journal): no trailer was read, which costs a HEAD and ranged GETs per pack; a segment costs one GET.
    expect(rebuilt).toMatchObject({ segments: segments.length, damaged_segments: [], packs_from_segments: before.packs, packs_from_trailers: 0 });
    expect(rebuilt.store_requests.head).toBe(0);
    expect(rebuilt.store_requests.get).toBe(segments.length + 2); // and the two snapshot records

    keepd = await startKeepd(data, { env: awsEnv });
    env = agentEnv(keepd, env.KEEP_TOKEN, PASSWORD);
    const snaps = await keepJson(['snapshots'], env);
    expect(snaps.map((s: { id: string }) => s.id)).toContain(snapshot);
    expect(snaps).toHaveLength(2);
    const target = path.join(dir, 'restore-2');
    const r = await runKeep(['restore', snapshot, '--target', target], env);
    expect(r.code, r.stderr).toBe(0);
    expect(compareTrees(tree.root, restoredPath(target, tree.root))).toEqual([]);
    expect(await keepd.stop()).toEqual({ code: 0, signal: null });
  }, TEST_MS);

  it('the data directory lost: keepd init --attach makes a new one from the bucket (config, index); a new token restores byte-identical', async () => {
    const before = await keepdJson(['check', '--data', data], { env: awsEnv });
    // a prefix without a repository is named, and leaves nothing behind
    const nothing = path.join(dir, 'attach-nothing');
    const refused = await runKeepd(['init', '--data', nothing, '--store', `s3://${BUCKET}/no-such/repo`, '--s3-path-style', '--attach'], { env: awsEnv });
    expect(refused.code, refused.stderr).not.toBe(0);
    expect(refused.stderr).toMatch(/holds no repository/);
    expect(fs.existsSync(path.join(nothing, 'store.json'))).toBe(false);

    const fresh = path.join(dir, 'attached');
    const a = await keepdJson(['init', '--data', fresh, '--store', `s3://${BUCKET}/${PREFIX}`, '--s3-path-style', '--attach'], { env: awsEnv });
    expect(a.attached).toBe(true);
    expect(a.snapshots).toBe(before.snapshots);
    expect(a.packs).toBe(before.packs);
    expect(a.blobs).toBe(before.blobs);
    expect(fs.readFileSync(path.join(fresh, 'config.json'), 'utf8')).toBe(fs.readFileSync(path.join(data, 'config.json'), 'utf8'));
    // tokens were the lost directory's: a new one, the same passphrase (the key files are in the bucket)
    const token = await createToken(fresh, 'agent', { sources: ['files'] });
    const moved = await startKeepd(fresh, { env: awsEnv });
    const target = path.join(dir, 'restore-attached');
    const r = await runKeep(['restore', snapshot, '--target', target], agentEnv(moved, token.token, PASSWORD));
    expect(r.code, r.stderr).toBe(0);
    expect(compareTrees(tree.root, restoredPath(target, tree.root))).toEqual([]);
    expect(await moved.stop()).toEqual({ code: 0, signal: null });
  }, TEST_MS);

  it('forget and prune on the bucket: the forgotten snapshot\'s packs leave the bucket only after the deletion delay, the rest checks whole', async () => {
    const bucketBytes = async () => {
      let n = 0;
      for await (const o of listAll(bucket, 'packs/')) n += o.size;
      return n;
    };
    const before = await bucketBytes();
    // the two snapshots back up different paths: one group by source
    const f = await keepdJson(['forget', '--data', data, '--source', 'files', '--group-by', 'source', '--keep-last', '1']);
    expect(f.groups[0].removed).toEqual([snapshot]);
    // three hours on: past every GC margin (margins.ts)
    const later = { KEEP_CLOCK_OFFSET_MS: String(3 * 60 * 60 * 1000) };
    const p = await keepdJson(['prune', '--data', data], { env: later });
    expect(p.blobs_removed).toBeGreaterThan(0);
    expect(p.packs_deleted + p.packs_repacked).toBeGreaterThan(0);
    expect(p.bytes_after).toBeLessThan(p.bytes_before);
    // the index segments naming the dropped packs were replaced by ones without them
    expect(p.index_segments_replaced).toBeGreaterThan(0);
    // Deletions wait (margins.ts PACK_DELETE_DELAY_MS, 1 h): the dropped packs stay in the bucket, recorded, not orphans.
    expect(p.packs_pending_deletion).toBe(p.packs_deleted + p.packs_repacked);
    expect(await bucketBytes()).toBeGreaterThanOrEqual(before);
    const waiting = await keepdJson(['check', '--data', data, '--read-data'], { env: later });
    expect(waiting.ok, JSON.stringify(waiting.errors)).toBe(true);
    expect(waiting.orphan_packs).toEqual([]);
    expect(waiting.packs_pending_deletion).toBe(p.packs_pending_deletion);
    // Half an hour on they still wait; past the delay the next prune deletes them.
    const halfHour = await keepdJson(['prune', '--data', data], { env: { KEEP_CLOCK_OFFSET_MS: String(3.5 * 60 * 60 * 1000) } });
    expect(halfHour.delayed_packs_deleted).toBe(0);
    expect(halfHour.packs_pending_deletion).toBe(p.packs_pending_deletion);
    const pastDelay = { KEEP_CLOCK_OFFSET_MS: String(4.1 * 60 * 60 * 1000) };
    const p2 = await keepdJson(['prune', '--data', data], { env: pastDelay });
    expect(p2.delayed_packs_deleted).toBe(p.packs_pending_deletion);
    expect(p2.packs_pending_deletion).toBe(0);
    expect(await bucketBytes()).toBeLessThan(before);
    expect(await bucketBytes()).toBe(p2.bytes_after);
    const report = await keepdJson(['check', '--data', data, '--read-data'], { env: pastDelay });
    expect(report.ok, JSON.stringify(report.errors)).toBe(true);
    expect(report.snapshots).toBe(1);
    expect(report.orphan_packs).toEqual([]);
    expect(report.packs_pending_deletion).toBe(0);
    expect(report.blobs_read).toBe(report.blobs);
  }, TEST_MS);

  it('keepd sync from the keepd on the bucket to a local replica: same snapshots, restores byte-identical, checks whole', async () => {
    const replicaToken = (await createToken(data, 'replica')).token;
    keepd = await startKeepd(data, { env: awsEnv });
    const R = path.join(dir, 'replica-local');
    const rep = await syncOk(R, keepd.url, replicaToken);
    expect(rep.snapshots_synced).toEqual([bigSnapshot]);
    expect(rep.snapshots_failed).toEqual([]);
    // a plain directory: the packs are files there
    expect(fs.existsSync(path.join(R, 'store.json'))).toBe(false);
    expect(fs.readdirSync(path.join(R, 'snapshots'))).toEqual([`${bigSnapshot}.json`]);
    const target = path.join(dir, 'restore-replica-local');
    const r = await runKeep(['restore', bigSnapshot, '--target', target], { KEEP_REPO: R, KEEP_PASSWORD: PASSWORD });
    expect(r.code, r.stderr).toBe(0);
    expect(compareTrees(big, restoredPath(target, big))).toEqual([]);
    const c = await keepdJson(['check', '--data', R, '--read-data']);
    expect(c.ok, JSON.stringify(c.errors)).toBe(true);
    expect(c.blobs_read).toBe(c.blobs);
    expect(await keepd.stop()).toEqual({ code: 0, signal: null });
  }, TEST_MS);

  it('keepd sync --store: a local keepd\'s replica kept in the bucket, then following with keepd serve --upstream; restores byte-identical', async () => {
    const P = path.join(dir, 'local-primary');
    await keepdJson(['init', '--data', P]);
    const agent = await createToken(P, 'agent', { sources: ['files'] });
    const replicaToken = (await createToken(P, 'replica')).token;
    const primary = await startKeepd(P);
    const penv = agentEnv(primary, agent.token, PASSWORD);
    await keepJson(['init', '--kdf-cost', '12'], penv);
    const s1 = await keepJson(['backup', tree.root, '--source', 'files'], penv);

    const R = path.join(dir, 'replica-s3');
    const sync = await runKeepd(['sync', '--data', R, '--from', primary.url, '--store', `s3://${BUCKET}/${REPLICA_PREFIX}`, '--s3-path-style', '--json'], { env: { KEEP_TOKEN: replicaToken }, timeoutMs: 180_000 });
    expect(sync.code, sync.stderr).toBe(0);
    expect(JSON.parse(sync.stdout).snapshots_synced).toEqual([s1.snapshot]);
    // The replica's packs and snapshot records are in its prefix of the bucket, none in its data directory.
    const rb = new S3ObjectStore({ bucket: BUCKET, prefix: `${REPLICA_PREFIX}/`, endpoint: rgw.endpoint, forcePathStyle: true, requestChecksumCalculation: 'WHEN_REQUIRED', credentials: { accessKeyId: rgw.accessKeyId, secretAccessKey: rgw.secretAccessKey } });
    try {
      const keys: string[] = [];
      for await (const o of listAll(rb, '')) keys.push(o.key);
      expect(keys).toContain(`snapshots/${s1.snapshot}.json`);
      expect(keys).toContain('config.json');
      expect(keys.filter((k) => k.startsWith('packs/')).length).toBeGreaterThan(0);
    } finally {
      await rb.close();
    }
    expect(fs.readdirSync(path.join(R, 'packs'), { recursive: true }).filter((n) => String(n).endsWith('.pack'))).toEqual([]);
    expect(JSON.parse(fs.readFileSync(path.join(R, 'config.json'), 'utf8')).id).toBe(JSON.parse(fs.readFileSync(path.join(P, 'config.json'), 'utf8')).id);

    // Following: a new backup on the primary reaches the replica on its own.
    const rtok = await createToken(R, 'agent', { sources: ['files'] });
    const replica = await startKeepd(R, { args: ['--upstream', primary.url, '--sync-interval', '1'], env: { KEEP_UPSTREAM_TOKEN: replicaToken } });
    fs.writeFileSync(path.join(tree.root, 'after-the-sync.bin'), crypto.randomBytes(300 * 1024));
    const s2 = await keepJson(['backup', tree.root, '--source', 'files'], penv);
    const renv = agentEnv(replica, rtok.token, PASSWORD);
    await waitFor(async () => (await keepJson(['snapshots'], renv)).some((s: { id: string }) => s.id === s2.snapshot), 180_000, 500);
    const target = path.join(dir, 'restore-replica-s3');
    const r = await runKeep(['restore', s2.snapshot, '--target', target], renv);
    expect(r.code, r.stderr).toBe(0);
    expect(compareTrees(tree.root, restoredPath(target, tree.root))).toEqual([]);
    expect(await replica.stop()).toEqual({ code: 0, signal: null });
    expect(await primary.stop()).toEqual({ code: 0, signal: null });
    const c = await keepdJson(['check', '--data', R, '--read-data']);
    expect(c.ok, JSON.stringify(c.errors)).toBe(true);
    expect(c.snapshots).toBe(2);
    expect(c.blobs_read).toBe(c.blobs);
  }, TEST_MS);

  it('prune while a backup runs on the bucket, and kill -9 of keepd prune after its repack: check --read-data passes, every snapshot restores', async () => {
    // Round one four hours ago (KEEP_CLOCK_OFFSET_MS, for keepd, agent and forget alike): two backups, the first forgotten.
    const G = path.join(dir, 'gc');
    const past = { KEEP_CLOCK_OFFSET_MS: String(-4 * 60 * 60 * 1000) };
    await keepdJson(['init', '--data', G, '--store', `s3://${BUCKET}/${GC_PREFIX}`, '--s3-path-style'], { env: past });
    const token = (await createToken(G, 'agent', { sources: ['files'] })).token;
    let k = await startKeepd(G, { env: past });
    let genv = agentEnv(k, token, PASSWORD, past);
    await keepJson(['init', '--kdf-cost', '12'], genv);
    const src = path.join(dir, 'gc-src');
    fs.mkdirSync(src);
    fs.writeFileSync(path.join(src, 'lasting.bin'), crypto.randomBytes(1 * MiB));
    fs.writeFileSync(path.join(src, 'replaced.bin'), crypto.randomBytes(3 * MiB));
    await keepJson(['backup', src, '--source', 'files'], genv);
    // The first pack keeps a quarter live once its snapshot goes: repacked.
    fs.writeFileSync(path.join(src, 'replaced.bin'), crypto.randomBytes(2 * MiB));
    const v2 = await keepJson(['backup', src, '--source', 'files'], genv);
    const m2 = manifest(src);
    await keepdJson(['forget', '--data', G, '--source', 'files', '--keep-last', '1'], { env: past });
    expect(await k.stop()).toEqual({ code: 0, signal: null });

    // Now: a backup's session is open (its agent stopped) while prunes run.
    k = await startKeepd(G);
    genv = agentEnv(k, token, PASSWORD);
    fs.writeFileSync(path.join(src, 'new.bin'), crypto.randomBytes(2 * MiB));
    const m3 = manifest(src);
    const run = startKeep(['backup', src, '--source', 'files', '--json'], genv);
    let ended = false;
    void run.result.then(() => (ended = true));
    await waitFor(() => ended || k.output().includes('"msg":"session opened"'), 120_000, 20);
    expect(ended, 'the backup ended before the prune').toBe(false);
    run.child.kill('SIGSTOP');
    try {
      // kill -9 once the repack's pack is in the bucket and the index switched to it, before the old pack is dropped
      const paused = path.join(dir, 'prune-paused');
      const first = start(KEEPD_BIN, ['prune', '--data', G, '--json'], { env: { KEEP_TEST_PAUSE_AT: `prune-repacked:${paused}` }, timeoutMs: 180_000 });
      let firstEnded = false;
      void first.result.then(() => (firstEnded = true));
      await waitFor(() => fs.existsSync(paused) || firstEnded, 180_000, 20);
      expect(fs.existsSync(paused), 'the prune ended without repacking').toBe(true);
      first.child.kill('SIGKILL');
      expect((await first.result).signal).toBe('SIGKILL');
      fs.rmSync(paused);
      const mid = await keepdJson(['check', '--data', G]);
      expect(mid.ok, JSON.stringify(mid.errors)).toBe(true);
      // The rerun, with the session still open, drops the emptied pack (recorded for deletion after the delay).
      const p = await keepdJson(['prune', '--data', G]);
      expect(p.open_sessions).toBe(1);
      expect(p.packs_deleted).toBeGreaterThan(0);
      expect(p.packs_pending_deletion).toBe(p.packs_deleted);
    } finally {
      run.child.kill('SIGCONT');
    }
    const done = await run.result;
    expect(done.code, done.stderr).toBe(0);
    const v3 = JSON.parse(done.stdout);
    const c = await keepdJson(['check', '--data', G, '--read-data']);
    expect(c.ok, JSON.stringify(c.errors)).toBe(true);
    expect(c.snapshots).toBe(2);
    expect(c.orphan_packs).toEqual([]);
    expect(c.blobs_read).toBe(c.blobs);
    for (const [id, m] of [[v2.snapshot, m2], [v3.snapshot, m3]] as const) {
      const restored = await restoreManifest(genv, id, src, dir);
      expect(restored.ok && restored.manifest, JSON.stringify(restored)).toEqual(m);
    }
    expect(await k.stop()).toEqual({ code: 0, signal: null });
  }, TEST_MS);
});
