/**
 * Synchronous replication acks (issue 13, item 11): a primary in synchronous
 * mode counts a replica only when the report comes from that replica's own
 * replica token (a replica id is bound to the token that first reported it,
 * one replica per token), and only for snapshots the primary holds. A replica
 * token cannot make up replicas to turn an unreplicated critical backup into
 * exit 0; an admin token reports nothing.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { prng, tempDirs } from './helpers.js';
import { agentEnv, createToken, Keepd, keepdInit, keepJson, RawClient, runKeep, Token, wire } from './keepd-harness.js';
import { alive, killAllServing, serveWith, snapshotFiles, status, syncOk } from './sync-util.js';

const PASSWORD = 'replica acks';
type Wire = Awaited<ReturnType<typeof wire>>;

describe('synchronous mode counts only registered replicas, for snapshots that exist', () => {
  const tmp = tempDirs();
  let dir: string;
  let P: string;
  let R: string;
  let primary: Keepd;
  let agent: Token;
  let replicaTok: Token;
  let otherReplicaTok: Token;
  let admin: Token;
  let crit: string;
  let realId: string;
  let w: Wire;
  const enc = (schema: string, v: object) => w.protobuf.toBinary(w.proto[schema], w.protobuf.create(w.proto[schema], v));
  const report = (t: Token, replicaId: string, snapshotIds: string[]) => {
    const c = new RawClient(w.grpc, `127.0.0.1:${primary.port}`, t.token);
    return c.unary('ReportReplica', enc('ReportReplicaRequestSchema', { replicaId, snapshotIds, newestTime: new Date().toISOString() })).finally(() => c.close());
  };

  beforeAll(async () => {
    w = await wire();
    dir = tmp.make('keep-sync-acks-');
    P = path.join(dir, 'primary');
    R = path.join(dir, 'replica');
    await keepdInit(P);
    agent = await createToken(P, 'agent', { sources: ['crit'] });
    replicaTok = await createToken(P, 'replica');
    otherReplicaTok = await createToken(P, 'replica');
    admin = await createToken(P, 'admin');
    primary = await serveWith(P, ['--sync-replicas', '1', '--sync-timeout', '8']);
    await keepJson(['init', '--kdf-cost', '12'], agentEnv(primary, agent.token, PASSWORD));
    crit = path.join(dir, 'crit');
    fs.mkdirSync(crit);
    // The real replica registers (its first report binds its id to its token), then goes away.
    await syncOk(R, primary.url, replicaTok.token);
    realId = fs.readFileSync(path.join(R, 'replica-id'), 'utf8').trim();
    expect((await status(P)).replicas.map((r: any) => r.replica_id)).toEqual([realId]);
  });

  afterAll(killAllServing);

  it('made-up replica ids (the replica token, another replica token unused so far aside, an admin token) do not ack a critical backup no replica holds', async () => {
    // The attacker watches commits with the replica token and reports every one under made-up replica ids.
    const client = new w.grpc.Client(`127.0.0.1:${primary.port}`, w.grpc.credentials.createInsecure());
    const md = new w.grpc.Metadata();
    md.set('authorization', `Bearer ${replicaTok.token}`);
    const watch = client.makeServerStreamRequest('/keep.v1.RepositoryService/WatchCommits', (b: Buffer) => b, (b: Buffer) => b, Buffer.alloc(0), md, {});
    watch.on('error', () => undefined);
    const answers: Promise<any>[] = [];
    watch.on('data', (b: Buffer) => {
      const id = w.protobuf.fromBinary(w.proto.WatchCommitsResponseSchema, b).snapshotId;
      answers.push(report(replicaTok, crypto.randomBytes(16).toString('hex'), [id]));
      answers.push(report(admin, crypto.randomBytes(16).toString('hex'), [id]));
      // Another replica token claiming the real replica's id.
      answers.push(report(otherReplicaTok, realId, [id]));
    });
    await new Promise((r) => setTimeout(r, 500)); // the watch is open

    fs.writeFileSync(path.join(crit, 'ledger.db'), prng(11, 64 * 1024));
    const r = await runKeep(['backup', crit, '--source', 'crit', '--tier', 'critical', '--json'], agentEnv(primary, agent.token, PASSWORD), { timeoutMs: 60_000 });
    watch.cancel();
    client.close();
    expect(r.code, r.stdout).not.toBe(0);
    expect(r.stderr).toMatch(/0 of 1 replica\(s\) hold it/);
    const got = await Promise.all(answers);
    expect(got.length).toBeGreaterThanOrEqual(3);
    for (const a of got) {
      expect(a.ok, JSON.stringify(a)).toBe(false);
      expect(a.code).toBe(w.grpc.status.PERMISSION_DENIED);
    }
    expect((await status(P)).replicas.map((x: any) => x.replica_id)).toEqual([realId]);
    alive(primary, 'primary');
  });

  it('the registered replica cannot ack a snapshot the primary does not have', async () => {
    const made = crypto.randomBytes(16).toString('hex');
    const a = await report(replicaTok, realId, [made]);
    expect(a.ok).toBe(false);
    expect((a as any).code).toBe(w.grpc.status.NOT_FOUND);
    expect((a as any).details).toMatch(/not on this primary|no snapshot/);
  });

  it('the real replica, served, acks a critical backup: exit 0 and it holds the snapshot', async () => {
    const replica = await serveWith(R, ['--upstream', primary.url, '--sync-interval', '60'], { KEEP_UPSTREAM_TOKEN: replicaTok.token });
    try {
      await new Promise((r) => setTimeout(r, 1000)); // its commit watch is open
      fs.writeFileSync(path.join(crit, 'ledger.db'), prng(12, 64 * 1024));
      const b = await keepJson(['backup', crit, '--source', 'crit', '--tier', 'critical'], agentEnv(primary, agent.token, PASSWORD));
      expect(snapshotFiles(R)).toContain(b.snapshot);
      alive(replica, 'replica');
    } finally {
      await replica.stop();
    }
  });
});
