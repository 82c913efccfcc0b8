/**
 * Backup and restore through a real keepd over loopback gRPC: the second
 * backup of unchanged data sends (almost) nothing, the restore is identical
 * to the source, and the data directory keepd wrote restores the same when
 * opened as an embedded (local) repository.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compareTrees, generateTree, MiB, restoredPath, tempDirs, TreeInfo } from './helpers.js';
import { agentEnv, createToken, Keepd, keepdInit, keepdJson, keepdMetric, keepJson, killAllKeepd, runKeep, startKeepd } from './keepd-harness.js';

const PASSWORD = 'backup over grpc';

describe('keep backup and restore through keepd (grpc://)', () => {
  const tmp = tempDirs();
  let dir: string;
  let data: string;
  let keepd: Keepd;
  let env: Record<string, string | undefined>;
  let tree: TreeInfo;
  let first: any;
  let second: any;

  beforeAll(async () => {
    dir = tmp.make('keep-grpc-br-');
    data = path.join(dir, 'data');
    await keepdInit(data);
    const agent = await createToken(data, 'agent', { sources: ['files'] });
    keepd = await startKeepd(data);
    env = agentEnv(keepd, agent.token, PASSWORD);
    // Random and compressible large files, many small files, every kind of entry.
    tree = generateTree(path.join(dir, 'src'), { largeFiles: [3 * MiB, 1 * MiB + 12345], compressibleSize: 2 * MiB, smallFiles: 150 });
    const init = await keepJson(['init', '--kdf-cost', '12'], env);
    expect(init.repository).toMatch(/^[0-9a-f]{32}$/);
  });

  afterAll(killAllKeepd);

  it('the first backup sends the data, the second of unchanged data sends almost nothing', async () => {
    first = await keepJson(['backup', tree.root, '--source', 'files'], env);
    expect(first.source).toBe('files');
    expect(first.files_new).toBe(tree.files);
    // Random bytes do not compress: at least those crossed the wire.
    expect(first.bytes_sent).toBeGreaterThan(4 * MiB);
    expect(first.chunks_new).toBeGreaterThan(3);

    second = await keepJson(['backup', tree.root, '--source', 'files'], env);
    expect(second.snapshot).not.toBe(first.snapshot);
    expect(second.files_unmodified).toBe(tree.files);
    expect(second.files_new + second.files_changed).toBe(0);
    expect(second.bytes_read).toBe(0);
    expect(second.bytes_sent).toBeLessThan(tree.bytes / 100);

    const snaps = await keepJson(['snapshots', '--source', 'files'], env);
    expect(snaps.map((s: any) => s.id)).toEqual([first.snapshot, second.snapshot]);
    expect(snaps[1].parent).toBe(first.snapshot);
    // keepd wrote the snapshot records and packs into its data directory.
    expect(fs.readdirSync(path.join(data, 'snapshots')).sort()).toEqual([`${first.snapshot}.json`, `${second.snapshot}.json`].sort());
  });

  it('restores byte-identical over gRPC, and identically from the data dir opened locally', async () => {
    const viaGrpc = path.join(dir, 'restore-grpc');
    const r = await runKeep(['restore', 'latest', '--source', 'files', '--target', viaGrpc], env);
    expect(r.code, r.stderr).toBe(0);
    expect(compareTrees(tree.root, restoredPath(viaGrpc, tree.root), { rootMeta: true })).toEqual([]);

    // The first snapshot restores too (a different snapshot id over the same trees).
    const viaGrpcFirst = path.join(dir, 'restore-grpc-first');
    const r1 = await runKeep(['restore', first.snapshot, '--target', viaGrpcFirst], env);
    expect(r1.code, r1.stderr).toBe(0);
    expect(compareTrees(tree.root, restoredPath(viaGrpcFirst, tree.root))).toEqual([]);

    // Stop keepd (SIGTERM drains and exits 0), then open its data dir as an embedded repository.
    expect(await keepd.stop()).toEqual({ code: 0, signal: null });
    const local = { KEEP_REPO: data, KEEP_PASSWORD: PASSWORD };
    const localSnaps = await keepJson(['snapshots'], local);
    expect(localSnaps.map((s: any) => s.id)).toEqual([first.snapshot, second.snapshot]);
    const viaLocal = path.join(dir, 'restore-local');
    const l = await runKeep(['restore', 'latest', '--source', 'files', '--target', viaLocal], local);
    expect(l.code, l.stderr).toBe(0);
    expect(compareTrees(tree.root, restoredPath(viaLocal, tree.root), { rootMeta: true })).toEqual([]);
    expect(compareTrees(viaGrpc, viaLocal)).toEqual([]);

    // And keepd's keyless check agrees the directory is whole.
    const c = await keepdJson(['check', '--data', data, '--read-data']);
    expect(c.ok).toBe(true);
    expect(c.snapshots).toBe(2);
    expect(c.blobs_read).toBe(c.blobs);
  });
});

describe('an upload of thousands of small blobs through keepd', () => {
  const tmp = tempDirs();
  afterAll(killAllKeepd);

  it('is acknowledged blob by blob with batching off (as an older agent sends), in batches otherwise (issue 21); both restore byte-identical, keepd waiting on its stream without piling up listeners', async () => {
    const dir = tmp.make('keep-grpc-many-');
    const data = path.join(dir, 'data');
    await keepdInit(data);
    const agent = await createToken(data, 'agent', { sources: ['single', 'batched'] });
    const keepd = await startKeepd(data, { metrics: true });
    await keepJson(['init', '--kdf-cost', '12'], agentEnv(keepd, agent.token, PASSWORD));
    const messages = { single: 0, batched: 0 };
    for (const [source, files, batch] of [
      ['single', 4000, 'off'],
      ['batched', 2000, undefined],
    ] as const) {
      const env = agentEnv(keepd, agent.token, PASSWORD, { KEEP_UPLOAD_BATCH: batch });
      const src = path.join(dir, source);
      fs.mkdirSync(src);
      // Acks are small and many: keepd's stream refuses writes until the agent reads them, again and again.
      for (let i = 0; i < files; i++) fs.writeFileSync(path.join(src, `f${i}`), `small file ${source} ${i}\n`);
      const before = await keepdMetric(keepd, 'keep_upload_messages_total');
      const b = await keepJson(['backup', src, '--source', source], env);
      expect(b.files_new).toBe(files);
      expect(b.chunks_new).toBe(files);
      messages[source] = (await keepdMetric(keepd, 'keep_upload_messages_total')) - before;
      const target = path.join(dir, `restore-${source}`);
      const r = await runKeep(['restore', 'latest', '--source', source, '--target', target], env);
      expect(r.code, r.stderr).toBe(0);
      expect(compareTrees(src, restoredPath(target, src))).toEqual([]);
    }
    // one message per blob (the files' chunks and the tree node), against a few hundred blobs per message
    expect(messages.single).toBeGreaterThanOrEqual(4001);
    expect(messages.batched).toBeGreaterThan(0);
    expect(messages.batched).toBeLessThan(2001 / 50);
    expect(await keepd.stop()).toEqual({ code: 0, signal: null });
    // Each wait for 'drain' used to leave a 'cancelled' listener behind (Node warns past 10).
    expect(keepd.output()).not.toMatch(/MaxListenersExceededWarning/);
    const c = await keepdJson(['check', '--data', data, '--read-data']);
    expect(c.ok).toBe(true);
    expect(c.blobs).toBeGreaterThanOrEqual(6002);
    expect(c.blobs_read).toBe(c.blobs);
  });
});
