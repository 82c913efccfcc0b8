/**
 * keepd keeping its repository in a bucket on a real Ceph RADOS Gateway
 * (test/rgw-harness.ts, one per file): `keepd init --store s3://...` records
 * the bucket in the data directory (never the credentials, which come from
 * the AWS environment variables); packs, snapshot records, key files and the
 * config live in the bucket, the LMDB index and state stay local. A backup
 * and restore over gRPC, a second writer refused by the writer lease,
 * `keepd check --read-data`, `keepd rebuild-index` from the pack trailers in
 * the bucket after the local index is deleted, kill -9 during an upload, and
 * forget + prune deleting from the bucket.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { listAll, S3ObjectStore } from '@keep/core/store';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compareTrees, generateTree, MiB, restoredPath, tempDirs, type TreeInfo } from './helpers.js';
import { agentEnv, createToken, type Keepd, keepdJson, keepJson, killAllKeepd, metric, runKeep, runKeepd, scrape, startKeep, startKeepd, waitFor } from './keepd-harness.js';
import { type Rgw, rgwUnavailable, startRgw } from './rgw-harness.js';

const RGW_START_MS = 240_000;
/** a loaded CI machine: uploads to the gateway, restores, a rebuild */
const TEST_MS = 300_000;
const BUCKET = 'keep-e2e';
const PREFIX = 'site-a/repo';
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
  }, TEST_MS);

  it('a second keepd on the same prefix is refused while the first holds the writer lease, and gets it once the first stops', async () => {
    const second = path.join(dir, 'second');
    fs.mkdirSync(second);
    for (const f of ['config.json', 'store.json']) fs.copyFileSync(path.join(data, f), path.join(second, f));
    const refused = await runKeepd(['serve', '--data', second, '--listen', '127.0.0.1:0'], { env: awsEnv, timeoutMs: 60_000 });
    expect(refused.code, refused.stderr).toBe(11); // LOCKED
    expect(refused.stderr).toMatch(/written by another keepd/);

    expect(await keepd.stop()).toEqual({ code: 0, signal: null });
    const taken = await startKeepd(second, { env: awsEnv });
    expect(await taken.stop()).toEqual({ code: 0, signal: null });
  }, TEST_MS);

  it('kill -9 of keepd during an upload: the restarted keepd takes its lease back at once, the rerun finishes, the restore is identical', async () => {
    keepd = await startKeepd(data, { env: awsEnv });
    env = agentEnv(keepd, env.KEEP_TOKEN, PASSWORD);
    // More than two packs' worth (packs close at 16 MiB), so some reach the bucket before the commit.
    const big = path.join(dir, 'big');
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

  it('keepd rebuild-index rebuilds the deleted local index from the pack trailers in the bucket; restore works after', async () => {
    const before = await keepdJson(['check', '--data', data], { env: awsEnv });
    for (const f of fs.readdirSync(data)) if (f.startsWith('index.mdb')) fs.rmSync(path.join(data, f));
    const rebuilt = await keepdJson(['rebuild-index', '--data', data], { env: awsEnv });
    expect(rebuilt.packs).toBe(before.packs);
    expect(rebuilt.blobs).toBe(before.blobs);
    expect(rebuilt.damaged_packs).toEqual([]);

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

  it('forget and prune on the bucket: the forgotten snapshot\'s packs leave the bucket, the rest checks whole', async () => {
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
    expect(await bucketBytes()).toBeLessThan(before);
    expect(await bucketBytes()).toBe(p.bytes_after);
    const report = await keepdJson(['check', '--data', data, '--read-data'], { env: later });
    expect(report.ok, JSON.stringify(report.errors)).toBe(true);
    expect(report.snapshots).toBe(1);
    expect(report.orphan_packs).toEqual([]);
    expect(report.blobs_read).toBe(report.blobs);
  }, TEST_MS);
});
