/**
 * Issue 15: `keep forget` runs core's forget engine (the one `keepd forget`
 * runs) over gRPC for admin tokens, through keepd's Forget RPC, and embedded
 * in a local repository. An agent token may add snapshots, never remove
 * them: PERMISSION_DENIED, nothing removed. --json is restic-shaped: one
 * entry per group with its key, keep and remove lists and reasons. Real keepd
 * over gRPC on loopback, real keep processes, real files.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initRepo, keep, keepJson as localJson, tempDirs } from './helpers.js';
import { agentEnv, Keepd, keepJson, killAllKeepd, RawClient, runKeep, Token, wire } from './keepd-harness.js';
import { etcThenHome, keepdWithAdmin } from './retention-fixture.js';

describe('keep forget over gRPC (admin tokens) and embedded', () => {
  const tmp = tempDirs();
  let dir: string;
  let keepd: Keepd;
  let etc: string;
  let home: string;
  const tok: Record<string, Token> = {};
  let etcSnap: string;
  let homeSnaps: string[] = [];
  const ids = async (t: Token) => (await keepJson(['snapshots'], agentEnv(keepd, t.token))).map((s: any) => s.id).sort();

  beforeAll(async () => {
    dir = tmp.make('keep-forget-grpc-');
    const k = await keepdWithAdmin(dir, 'web1');
    keepd = k.keepd;
    tok.agent = k.agent;
    tok.admin = k.admin;
    ({ etc, home, etcSnap, homeSnaps } = await etcThenHome(dir, k, 'web1'));
  });

  afterAll(killAllKeepd);

  it('an agent token is refused (PERMISSION_DENIED), by keep and on the raw RPC; nothing is removed', async () => {
    const before = await ids(tok.admin);
    const r = await runKeep(['forget', '--keep-last', '1'], agentEnv(keepd, tok.agent.token));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^keep: error: .*(admin|permission|denied)/im);
    const w = await wire();
    const raw = new RawClient(w.grpc, `127.0.0.1:${keepd.port}`, tok.agent.token);
    const res = await raw.unary('Forget', w.protobuf.toBinary(w.proto.ForgetRequestSchema, w.protobuf.create(w.proto.ForgetRequestSchema, { keepLast: 1 })));
    expect(res.ok).toBe(false);
    expect((res as any).code).toBe(7); // PERMISSION_DENIED
    raw.close();
    expect(await ids(tok.admin)).toEqual(before);
  });

  it('--dry-run --json (admin) is restic-shaped per group and removes nothing', async () => {
    const before = await ids(tok.admin);
    const groups = await keepJson(['forget', '--keep-last', '2', '--dry-run'], agentEnv(keepd, tok.admin.token));
    expect(groups).toHaveLength(2);
    const etcGroup = groups.find((g: any) => g.group_key.paths[0] === etc);
    const homeGroup = groups.find((g: any) => g.group_key.paths[0] === home);
    expect(etcGroup.group_key).toEqual({ source: 'web1', paths: [etc] });
    expect(etcGroup.keep.map((s: any) => s.id)).toEqual([etcSnap]);
    expect(etcGroup.remove).toEqual([]);
    expect(homeGroup.keep.map((s: any) => s.id)).toEqual([homeSnaps[2], homeSnaps[1]]);
    expect(homeGroup.remove.map((s: any) => s.id)).toEqual([homeSnaps[0]]);
    expect(homeGroup.remove[0]).toMatchObject({ short_id: homeSnaps[0].slice(0, 8), paths: [home], hostname: expect.any(String) });
    expect(homeGroup.reasons[0]).toMatchObject({ snapshot: { id: homeSnaps[2] }, matches: ['last snapshot'] });
    expect(await ids(tok.admin)).toEqual(before);
  });

  it('an admin token forgets (and prunes) through keepd, grouped as asked', async () => {
    const r = await runKeep(['forget', '--keep-last', '1', '--group-by', 'source,paths', '--prune', '--json'], agentEnv(keepd, tok.admin.token));
    expect(r.code, r.stderr).toBe(0);
    const groups = JSON.parse(r.stdout);
    // keepd pruned after forgetting (its report on stderr: stdout stays restic's array of groups)
    expect(r.stderr).toMatch(/^keep: prune: removed \d+ blobs/m);
    expect(groups.flatMap((g: any) => g.remove.map((s: any) => s.id)).sort()).toEqual([homeSnaps[0], homeSnaps[1]].sort());
    expect(await ids(tok.admin)).toEqual([etcSnap, homeSnaps[2]].sort());
    // a backup still builds on what is left
    fs.writeFileSync(path.join(home, 'later.txt'), 'later\n');
    const b = await keepJson(['backup', home, '--source', 'web1'], agentEnv(keepd, tok.agent.token));
    expect(b.parent).toBe(homeSnaps[2]);
  });

  it('embedded: the same engine and flags on a local repository', async () => {
    const { env } = await initRepo(tmp.make('keep-forget-local-'));
    const a = path.join(dir, 'local-a');
    const b = path.join(dir, 'local-b');
    fs.mkdirSync(a);
    fs.mkdirSync(b);
    fs.writeFileSync(path.join(a, 'x'), 'x');
    fs.writeFileSync(path.join(b, 'y'), 'y');
    const sa = (await localJson(['backup', a, '--source', 's'], { env })).snapshot;
    const sb1 = (await localJson(['backup', b, '--source', 's'], { env })).snapshot;
    const sb2 = (await localJson(['backup', b, '--source', 's'], { env })).snapshot;
    const groups = await localJson(['forget', '--keep-last', '1'], { env });
    expect(groups.map((g: any) => g.group_key.paths)).toEqual([[a], [b]]);
    expect(groups.flatMap((g: any) => g.remove.map((s: any) => s.id))).toEqual([sb1]);
    const left = (await localJson(['snapshots'], { env })).map((s: any) => s.id).sort();
    expect(left).toEqual([sa, sb2].sort());
    const none = await keep(['forget'], { env });
    expect(none.code).toBe(2);
  });
});
