/**
 * Who may do what on a keepd (append-only credentials, docs/ARCHITECTURE.md "Auth"):
 * no token or an unknown one is UNAUTHENTICATED; an agent token backs up and
 * reads its own sources only, never deletes and cannot run keyless
 * maintenance; a replica only reads; an admin may do everything.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compareTrees, restoredPath, tempDirs } from './helpers.js';
import { agentEnv, createToken, Keepd, keepdInit, keepdJson, keepJson, killAllKeepd, RawClient, runKeep, startKeepd, Token, wire } from './keepd-harness.js';

const PERMISSION = /permission|may not|not allowed|denied/i;

describe('authentication and authorization on keepd', () => {
  const tmp = tempDirs();
  let dir: string;
  let data: string;
  let keepd: Keepd;
  const tok: Record<string, Token> = {};
  const env = (t: string | undefined) => agentEnv(keepd, t === undefined ? undefined : (tok[t]?.token ?? t));
  let srcA: string;
  let srcB: string;
  let snapA: string;
  let snapB: string;

  beforeAll(async () => {
    dir = tmp.make('keep-grpc-auth-');
    data = path.join(dir, 'data');
    await keepdInit(data);
    tok.a = await createToken(data, 'agent', { sources: ['a'] });
    tok.b = await createToken(data, 'agent', { sources: ['b'] });
    tok.replica = await createToken(data, 'replica');
    tok.admin = await createToken(data, 'admin');
    tok.revoked = await createToken(data, 'agent', { sources: ['a'] });
    keepd = await startKeepd(data);
    await keepJson(['init', '--kdf-cost', '12'], env('admin'));
    srcA = path.join(dir, 'src-a');
    srcB = path.join(dir, 'src-b');
    fs.mkdirSync(srcA);
    fs.mkdirSync(srcB);
    fs.writeFileSync(path.join(srcA, 'a.txt'), 'belongs to source a\n'.repeat(500));
    fs.writeFileSync(path.join(srcB, 'b.txt'), 'belongs to source b only\n'.repeat(700));
    snapA = (await keepJson(['backup', srcA, '--source', 'a'], env('a'))).snapshot;
    snapB = (await keepJson(['backup', srcB, '--source', 'b'], env('b'))).snapshot;
  });

  afterAll(killAllKeepd);

  it('no token, a bogus token, a wrong secret and a revoked token are unauthenticated', async () => {
    const none = await runKeep(['snapshots'], env(undefined));
    expect(none.code).not.toBe(0);
    expect(none.stderr).toMatch(/^keep: error: .*(token|authenticat)/im);
    expect(none.stderr).toMatch(/KEEP_TOKEN/);

    const bogus = await runKeep(['snapshots'], env('not-a-token'));
    expect(bogus.code).not.toBe(0);
    expect(bogus.stderr).toMatch(/unknown or revoked token|unauthenticated/i);

    // The right id with a wrong secret.
    const forged = `keep_${tok.a.id}_${'A'.repeat(43)}`;
    const wrong = await runKeep(['backup', srcA, '--source', 'a'], env(forged));
    expect(wrong.code).not.toBe(0);
    expect(wrong.stderr).toMatch(/unknown or revoked token|unauthenticated/i);

    // Revoked while keepd runs (another process writes the token store).
    expect((await runKeep(['snapshots'], env('revoked'))).code).toBe(0);
    await keepdJson(['token', 'revoke', tok.revoked.id, '--data', data]);
    const revoked = await runKeep(['snapshots'], env('revoked'));
    expect(revoked.code).not.toBe(0);
    expect(revoked.stderr).toMatch(/unknown or revoked token|unauthenticated/i);

    // On the wire: UNAUTHENTICATED before anything else, even for GetConfig.
    const { grpc, protobuf, proto } = await wire();
    for (const t of [undefined, 'garbage', forged]) {
      const c = new RawClient(grpc, `127.0.0.1:${keepd.port}`, t);
      try {
        const r = await c.unary('GetConfig', protobuf.toBinary(proto.GetConfigRequestSchema, protobuf.create(proto.GetConfigRequestSchema, { protocolVersion: 1 })));
        expect(r.ok).toBe(false);
        expect((r as any).code).toBe(grpc.status.UNAUTHENTICATED);
      } finally {
        c.close();
      }
    }
    // The unauthenticated attempts stored nothing.
    expect((await keepJson(['snapshots'], env('admin'))).map((s: any) => s.id).sort()).toEqual([snapA, snapB].sort());
  });

  it("an agent token reaches only its own sources and cannot run admin RPCs", async () => {
    // Listing: b's snapshots are invisible and asking for them is refused.
    const own = await keepJson(['snapshots'], env('a'));
    expect(own.map((s: any) => s.id)).toEqual([snapA]);
    const other = await runKeep(['snapshots', '--source', 'b'], env('a'));
    expect(other.code).not.toBe(0);
    expect(other.stderr).toMatch(PERMISSION);

    // Backing up as b.
    const before = fs.readdirSync(path.join(data, 'snapshots')).length;
    const backup = await runKeep(['backup', srcA, '--source', 'b'], env('a'));
    expect(backup.code).not.toBe(0);
    expect(backup.stderr).toMatch(PERMISSION);
    expect(fs.readdirSync(path.join(data, 'snapshots'))).toHaveLength(before);

    // Restoring b's snapshot by id: a cannot list it nor read its blobs.
    const target = path.join(dir, 'stolen');
    const restore = await runKeep(['restore', snapB, '--target', target], env('a'));
    expect(restore.code).not.toBe(0);
    expect(restore.stderr).toMatch(/permission|may not|not found|no snapshot/i);
    expect(fs.existsSync(path.join(target, srcB, 'b.txt'))).toBe(false);

    // On the wire: ReadBlobs of b's root tree (its id is in b's snapshot record on disk) is PERMISSION_DENIED.
    const rootB = JSON.parse(fs.readFileSync(path.join(data, 'snapshots', `${snapB}.json`), 'utf8')).root as string;
    const { grpc, protobuf, proto } = await wire();
    const c = new RawClient(grpc, `127.0.0.1:${keepd.port}`, tok.a.token);
    try {
      const req = protobuf.toBinary(proto.ReadBlobsRequestSchema, protobuf.create(proto.ReadBlobsRequestSchema, { ids: [Buffer.from(rootB, 'hex')] }));
      const r = await c.readBlobs(req);
      expect(r.code, r.details).toBe(grpc.status.PERMISSION_DENIED);
      expect(r.responses).toHaveLength(0);
      // b's own token reads it.
      const cb = new RawClient(grpc, `127.0.0.1:${keepd.port}`, tok.b.token);
      const rb = await cb.readBlobs(req);
      cb.close();
      expect(rb.code, rb.details).toBe(grpc.status.OK);
      expect(rb.responses).toHaveLength(1);
    } finally {
      c.close();
    }

    // Check (keyless maintenance) is an admin-only RPC: refused to agents (and replicas) on the wire...
    const checkReq = protobuf.toBinary(proto.CheckRequestSchema, protobuf.create(proto.CheckRequestSchema, {}));
    for (const t of ['a', 'replica']) {
      const cc = new RawClient(grpc, `127.0.0.1:${keepd.port}`, tok[t].token);
      const r = await cc.unary('Check', checkReq);
      cc.close();
      expect(r.ok, `Check with a ${t} token`).toBe(false);
      expect((r as any).code).toBe(grpc.status.PERMISSION_DENIED);
      expect((r as any).details).toMatch(PERMISSION);
    }
    // ...so `keep check` with an agent token gets no keyless (structural) report: it checks, with
    // the key, only the snapshots this token may read.
    const check = await keepJson(['check'], env('a'));
    expect(check.structural).toBe(false);
    expect(check.snapshots).toBe(1);
    expect(check.ok).toBe(true);

    // And a still restores its own snapshot.
    const mine = path.join(dir, 'restore-a');
    const ok = await runKeep(['restore', snapA, '--target', mine], env('a'));
    expect(ok.code, ok.stderr).toBe(0);
    expect(compareTrees(srcA, restoredPath(mine, srcA))).toEqual([]);
  });

  it('a replica token reads every source but cannot back up', async () => {
    const list = await keepJson(['snapshots'], env('replica'));
    expect(list.map((s: any) => s.id).sort()).toEqual([snapA, snapB].sort());
    const backup = await runKeep(['backup', srcA, '--source', 'a'], env('replica'));
    expect(backup.code).not.toBe(0);
    expect(backup.stderr).toMatch(PERMISSION);
    expect((await keepJson(['snapshots'], env('admin'))).length).toBe(2);
    // Reading includes restoring.
    const target = path.join(dir, 'restore-replica');
    const r = await runKeep(['restore', snapB, '--target', target], env('replica'));
    expect(r.code, r.stderr).toBe(0);
    expect(compareTrees(srcB, restoredPath(target, srcB))).toEqual([]);
    // Adding a key is a write.
    const add = await runKeep(['key', 'add', '--kdf-cost', '12'], { ...env('replica'), KEEP_NEW_PASSWORD: 'replica pass' });
    expect(add.code).not.toBe(0);
    expect(add.stderr).toMatch(PERMISSION);
  });

  it('removing a key: refused to an agent, allowed to an admin', async () => {
    // Adding a key to an initialized repository is an admin's (keyfile-validation.test.ts).
    const added = await keepJson(['key', 'add', '--kdf-cost', '12'], { ...env('admin'), KEEP_NEW_PASSWORD: 'second passphrase' });
    expect(added.added).toMatch(/^[0-9a-f]+$/);
    const keys = () => keepJson(['key', 'list'], env('admin')).then((l: any[]) => l.map((k) => k.id));
    expect(await keys()).toContain(added.added);

    const refused = await runKeep(['key', 'remove', added.added], env('a'));
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(PERMISSION);
    expect(await keys()).toContain(added.added);
    expect(fs.readdirSync(path.join(data, 'keys'))).toContain(`${added.added}.json`);

    const removed = await keepJson(['key', 'remove', added.added], env('admin'));
    expect(removed.removed).toBe(added.added);
    expect(await keys()).not.toContain(added.added);
  });

  it('an admin token may do everything', async () => {
    const list = await keepJson(['snapshots'], env('admin'));
    expect(list.map((s: any) => s.id).sort()).toEqual([snapA, snapB].sort());
    const b = await keepJson(['backup', srcB, '--source', 'b'], env('admin'));
    expect(b.source).toBe('b');
    const fresh = await keepJson(['backup', srcA, '--source', 'brand-new'], env('admin'));
    expect(fresh.source).toBe('brand-new');
    const check = await keepJson(['check'], env('admin'));
    expect(check.ok).toBe(true);
    expect(check.structural).toBe(true);
    expect(check.blobs).toBeGreaterThan(4);
    expect(check.snapshots).toBe(4);
    const target = path.join(dir, 'restore-admin');
    const r = await runKeep(['restore', snapA, '--target', target], env('admin'));
    expect(r.code, r.stderr).toBe(0);
    expect(compareTrees(srcA, restoredPath(target, srcA))).toEqual([]);
  });
});
