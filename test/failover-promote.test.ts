/**
 * Failover (issue 13, item 12): a replica refuses every write until
 * `keepd promote`; the primary's token records (hashes) and revocations
 * replicate, so the README's failover restore works with the primary's
 * token; with the primary down, `keep backup` through KEEP_REPO=primary,replica
 * does not write to the read-only replica, and does once it is promoted.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compareTrees, prng, restoredPath, tempDirs } from './helpers.js';
import { agentEnv, createToken, Keepd, keepdInit, keepJson, RawClient, runKeep, runKeepd, Token, wire } from './keepd-harness.js';
import { eventually, killAllServing, serveWith, snapshotFiles, syncOk } from './sync-util.js';

const PASSWORD = 'failover';

describe('a read-only replica until promoted; tokens replicate', () => {
  const tmp = tempDirs();
  let dir: string;
  let P: string;
  let R: string;
  let primary: Keepd;
  let replica: Keepd;
  let agent: Token;
  let leaver: Token;
  let admin: Token;
  let replicaTok: Token;
  let src: string;
  let failoverEnv: Record<string, string | undefined>;

  beforeAll(async () => {
    dir = tmp.make('keep-failover-');
    P = path.join(dir, 'primary');
    R = path.join(dir, 'replica');
    await keepdInit(P);
    agent = await createToken(P, 'agent', { sources: ['files'] });
    leaver = await createToken(P, 'agent', { sources: ['files'] });
    admin = await createToken(P, 'admin');
    replicaTok = await createToken(P, 'replica');
    primary = await serveWith(P);
    await keepJson(['init', '--kdf-cost', '12'], agentEnv(primary, agent.token, PASSWORD));
    src = path.join(dir, 'src');
    fs.mkdirSync(src);
    fs.writeFileSync(path.join(src, 'a.bin'), prng(1, 300 * 1024));
    await keepJson(['backup', src, '--source', 'files'], agentEnv(primary, agent.token, PASSWORD));
    await syncOk(R, primary.url, replicaTok.token);
    replica = await serveWith(R, ['--upstream', primary.url, '--sync-interval', '60'], { KEEP_UPSTREAM_TOKEN: replicaTok.token });
    // A token revoked on the primary, then one more backup: the replica pulls it, and the revocation.
    const rv = await runKeepd(['token', 'revoke', leaver.id, '--data', P]);
    expect(rv.code, rv.stderr).toBe(0);
    fs.writeFileSync(path.join(src, 'b.bin'), prng(2, 200 * 1024));
    const s1 = await keepJson(['backup', src, '--source', 'files'], agentEnv(primary, agent.token, PASSWORD));
    await eventually(async () => snapshotFiles(R), (l) => l.includes(s1.snapshot), 20_000);
    failoverEnv = { KEEP_REPO: `${primary.url},${replica.url}`, KEEP_TOKEN: agent.token, KEEP_PASSWORD: PASSWORD };
  });

  afterAll(killAllServing);

  it('the replica knows the primary\'s tokens (and revocations) and refuses every write', async () => {
    // The primary's agent token reads on the replica.
    const list = await keepJson(['snapshots'], agentEnv(replica, agent.token, PASSWORD));
    expect(list.map((s: any) => s.id).sort()).toEqual(snapshotFiles(P));
    // The revoked one does not.
    const revoked = await runKeep(['snapshots'], agentEnv(replica, leaver.token, PASSWORD));
    expect(revoked.code).not.toBe(0);
    expect(revoked.stderr).toMatch(/unknown or revoked token/);

    const before = snapshotFiles(R);
    const b = await runKeep(['backup', src, '--source', 'files'], agentEnv(replica, agent.token, PASSWORD));
    expect(b.code).not.toBe(0);
    expect(b.stderr).toMatch(/^keep: error: .*read-only replica.*keepd promote/m);
    // An admin token cannot write either: AddKey and OpenSession are refused.
    const w = await wire();
    const enc = (schema: string, v: object) => w.protobuf.toBinary(w.proto[schema], w.protobuf.create(w.proto[schema], v));
    const c = new RawClient(w.grpc, `127.0.0.1:${replica.port}`, admin.token);
    const open = await c.unary('OpenSession', enc('OpenSessionRequestSchema', { source: 'files', host: 'x' }));
    expect(open.ok).toBe(false);
    expect((open as any).details).toMatch(/read-only replica/);
    const keys = fs.readdirSync(path.join(R, 'keys'));
    const validKey = JSON.parse(fs.readFileSync(path.join(R, 'keys', keys[0]), 'utf8'));
    const add = await c.unary('AddKey', enc('AddKeyRequestSchema', { keyFileJson: JSON.stringify({ ...validKey, id: 'abcdef0123456789' }) }));
    expect(add.ok).toBe(false);
    expect((add as any).details).toMatch(/read-only replica/);
    c.close();
    expect(snapshotFiles(R)).toEqual(before);
    expect(fs.readdirSync(path.join(R, 'keys'))).toEqual(keys);
  });

  it('primary down: the README\'s failover restore works with the primary\'s token; a backup does not go to the replica', async () => {
    await primary.stop('SIGKILL');
    const target = path.join(dir, 'r');
    const r = await runKeep(['restore', 'latest', '--target', target], failoverEnv);
    expect(r.code, r.stderr).toBe(0);
    expect(compareTrees(src, restoredPath(target, src))).toEqual([]);

    const before = snapshotFiles(R);
    const b = await runKeep(['backup', src, '--source', 'files'], failoverEnv);
    expect(b.code).not.toBe(0);
    expect(b.stderr).toMatch(/^keep: error: no writable repository in KEEP_REPO.*read-only replica/m);
    expect(snapshotFiles(R)).toEqual(before);
  });

  it('after `keepd promote` the replica takes backups (failover picks it) and no longer follows its upstream', async () => {
    const p = await runKeepd(['promote', '--data', R, '--json']);
    expect(p.code, p.stderr).toBe(0);
    expect(JSON.parse(p.stdout)).toMatchObject({ promoted: true, previous_upstream: primary.url });
    await eventually(async () => replica.output(), (o) => o.includes('"msg":"promoted'), 10_000);
    fs.writeFileSync(path.join(src, 'c.bin'), prng(3, 100 * 1024));
    const b = await keepJson(['backup', src, '--source', 'files'], failoverEnv);
    expect(snapshotFiles(R)).toContain(b.snapshot);

    // Serving it as a replica again is refused (split brain), with the reason.
    await replica.stop();
    const again = await runKeepd(['serve', '--data', R, '--listen', '127.0.0.1:0', '--upstream', primary.url], { env: { KEEP_UPSTREAM_TOKEN: replicaTok.token }, timeoutMs: 20_000 });
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/promoted/);
  });
});
