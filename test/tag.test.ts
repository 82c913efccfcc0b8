/**
 * Issue 15: `keep tag --add/--remove/--set [SNAPSHOT...]`, restic's: a
 * snapshot whose tags change is rewritten under a new id and MAC (restic's
 * `original` names the first record), and its old record removed. Over gRPC
 * for admin tokens only (ReplaceSnapshots): an agent token cannot remove a
 * record. keepd accepts only a tag change (the rest of the record, and its
 * commit time, stay). Real keepd over gRPC, real keep processes, real files.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compareTrees, initRepo, keep, keepJson as localJson, restoredPath, tempDirs } from './helpers.js';
import { agentEnv, Keepd, keepJson, killAllKeepd, RawClient, runKeep, Token, wire } from './keepd-harness.js';
import { keepdWithAdmin } from './retention-fixture.js';

describe('keep tag', () => {
  const tmp = tempDirs();
  let dir: string;
  let data: string;
  let keepd: Keepd;
  let src: string;
  const tok: Record<string, Token> = {};
  let first: string;
  let second: string;
  const list = async () => keepJson(['snapshots'], agentEnv(keepd, tok.admin.token));
  const record = (id: string) => JSON.parse(fs.readFileSync(path.join(data, 'snapshots', `${id}.json`), 'utf8'));

  beforeAll(async () => {
    dir = tmp.make('keep-tag-');
    const k = await keepdWithAdmin(dir, 'web1');
    ({ data, keepd } = k);
    tok.agent = k.agent;
    tok.admin = k.admin;
    src = path.join(dir, 'src');
    fs.mkdirSync(src);
    fs.writeFileSync(path.join(src, 'f.txt'), 'tagged data\n'.repeat(100));
    const env = agentEnv(keepd, tok.agent.token);
    first = (await keepJson(['backup', src, '--source', 'web1', '--tag', 'daily'], env)).snapshot;
    second = (await keepJson(['backup', src, '--source', 'web1'], env)).snapshot;
  });

  afterAll(killAllKeepd);

  it('an agent token is refused (PERMISSION_DENIED), by keep and on the raw RPC; the record stays', async () => {
    const r = await runKeep(['tag', '--add', 'keep-forever', first], agentEnv(keepd, tok.agent.token));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^keep: error: .*(admin|permission|denied)/im);
    const w = await wire();
    const raw = new RawClient(w.grpc, `127.0.0.1:${keepd.port}`, tok.agent.token);
    const req = w.protobuf.create(w.proto.ReplaceSnapshotsRequestSchema, { replacements: [{ oldId: first }] });
    const res = await raw.unary('ReplaceSnapshots', w.protobuf.toBinary(w.proto.ReplaceSnapshotsRequestSchema, req));
    raw.close();
    expect(res.ok).toBe(false);
    expect((res as any).code).toBe(7); // PERMISSION_DENIED
    expect((await list()).map((s: any) => [s.id, s.tags])).toEqual([
      [first, ['daily']],
      [second, []],
    ]);
  });

  it('an admin token rewrites: new id and MAC, original set, old record gone, commit time kept, data intact', async () => {
    const before = record(first);
    const r = await keepJson(['tag', '--add', 'keep-forever', '--remove', 'daily', first.slice(0, 8)], agentEnv(keepd, tok.admin.token));
    expect(r.changed).toHaveLength(1);
    const { old_id, new_id, tags } = r.changed[0];
    expect(old_id).toBe(first);
    expect(new_id).not.toBe(first);
    expect(tags).toEqual(['keep-forever']);
    expect(fs.existsSync(path.join(data, 'snapshots', `${first}.json`))).toBe(false);
    const after = record(new_id);
    expect(after).toMatchObject({ root: before.root, time: before.time, server_time: before.server_time, source: 'web1', original: first, tags: ['keep-forever'] });
    expect(after.mac).not.toBe(before.mac);

    const now = await list();
    const rewritten = now.find((s: any) => s.id === new_id);
    expect(rewritten).toMatchObject({ auth: 'authentic', original: first, tags: ['keep-forever'], paths: [src] });
    expect(now.map((s: any) => s.id)).not.toContain(first);

    // A second rewrite keeps pointing at the first record; an unchanged tag set rewrites nothing.
    const again = await keepJson(['tag', '--set', 'monthly', new_id], agentEnv(keepd, tok.admin.token));
    expect(record(again.changed[0].new_id).original).toBe(first);
    const same = await keepJson(['tag', '--set', 'monthly', again.changed[0].new_id], agentEnv(keepd, tok.admin.token));
    expect(same).toEqual({ changed: [], unchanged: 1 });

    const target = path.join(dir, 'restore');
    await keepJson(['restore', again.changed[0].new_id, '--target', target], agentEnv(keepd, tok.admin.token));
    expect(compareTrees(src, restoredPath(target, src))).toEqual([]);
  });

  it('keepd refuses a rewrite that changes more than the tags', async () => {
    const w = await wire();
    const raw = new RawClient(w.grpc, `127.0.0.1:${keepd.port}`, tok.admin.token);
    const old = record(second);
    const forged = { ...old, id: 'ab'.repeat(16), original: second, time: '2020-01-01T00:00:00.000Z', stats: undefined };
    const snapshot = w.proto.snapshotToWire({ ...forged, stats: old.stats });
    const req = w.protobuf.create(w.proto.ReplaceSnapshotsRequestSchema, { replacements: [{ oldId: second, snapshot }] });
    const res = await raw.unary('ReplaceSnapshots', w.protobuf.toBinary(w.proto.ReplaceSnapshotsRequestSchema, req));
    raw.close();
    expect(res.ok).toBe(false);
    expect((res as any).code).toBe(3); // INVALID_ARGUMENT
    expect((res as any).details).toMatch(/only its tags.*time/);
    expect(fs.existsSync(path.join(data, 'snapshots', `${second}.json`))).toBe(true);
  });

  it('embedded: --add, --remove and --set on a local repository; no snapshot given: all', async () => {
    const { env } = await initRepo(tmp.make('keep-tag-local-'));
    const a = (await localJson(['backup', src, '--tag', 'x'], { env })).snapshot;
    const b = (await localJson(['backup', src], { env })).snapshot;
    const added = await localJson(['tag', '--add', 'y,z'], { env });
    expect(added.changed.map((c: any) => [c.old_id, c.tags])).toEqual([
      [a, ['x', 'y', 'z']],
      [b, ['y', 'z']],
    ]);
    const removed = await localJson(['tag', '--remove', 'x', added.changed[0].new_id], { env });
    expect(removed.changed[0].tags).toEqual(['y', 'z']);
    const listed = await localJson(['snapshots'], { env });
    expect(listed.map((s: any) => [s.tags, s.auth, s.original])).toEqual([
      [['y', 'z'], 'authentic', a],
      [['y', 'z'], 'authentic', b],
    ]);
    const usage = await keep(['tag', '--set', 'a', '--add', 'b'], { env });
    expect(usage.code).toBe(2);
  });
});
