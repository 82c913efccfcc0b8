/**
 * Sessions and tokens (issue 13, item 10, and the --all-sources rule): a
 * session renewed forever still ends at the maximum session age; revoking a
 * token with `keepd token revoke` (another process) ends the token's open
 * Upload stream, and nothing it sends afterwards is stored; an agent token
 * for every source must be asked for explicitly.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { chunkId, deriveKeys, ManualClock, MAX_SESSION_AGE_MS, openMasterKey, parseKeyFile, sealData, storageHash } from '@keep/core';
import { createLogger } from '@keep/server/dist/log.js';
import { REVOCATION_RECHECK_MS } from '@keep/server/dist/auth/revocation.js';
import { serve } from '@keep/server/dist/serve.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDirs } from './helpers.js';
import { agentEnv, createToken, Keepd, keepdInit, keepdJson, keepJson, killAllKeepd, RawClient, runKeepd, startKeepd, Token, waitFor, wire } from './keepd-harness.js';
import { metricValue, scrape } from './sync-util.js';

const PASSWORD = 'session limits';
const MIN = 60 * 1000;

type Wire = Awaited<ReturnType<typeof wire>>;

/** A sealed blob of `text` under the repository's keys, as an agent would upload it. */
function sealedBlob(data: string, text: string): { id: Buffer; bytes: Buffer; hash: Buffer } {
  const files = fs.readdirSync(path.join(data, 'keys')).map((n) => parseKeyFile(fs.readFileSync(path.join(data, 'keys', n), 'utf8')));
  const keys = deriveKeys(openMasterKey(files, PASSWORD).master);
  const plain = Buffer.from(text);
  const id = chunkId(keys, plain);
  const bytes = sealData(keys, crypto.randomBytes(16), id, plain, 'none');
  return { id, bytes, hash: storageHash(bytes) };
}

/** A bidi Upload stream written one message at a time. */
function uploadStream(w: Wire, port: number, token: string) {
  const client = new w.grpc.Client(`127.0.0.1:${port}`, w.grpc.credentials.createInsecure());
  const md = new w.grpc.Metadata();
  md.set('authorization', `Bearer ${token}`);
  const call = client.makeBidiStreamRequest('/keep.v1.RepositoryService/Upload', (b: Buffer) => b, (b: Buffer) => b, md, { deadline: Date.now() + 60_000 });
  const acks: Buffer[] = [];
  call.on('data', (b: Buffer) => acks.push(b));
  call.on('error', () => undefined);
  const status = new Promise<{ code: number; details: string }>((resolve) => call.on('status', (s: { code: number; details: string }) => resolve(s)));
  return {
    acks,
    status,
    write: (b: Uint8Array) => call.write(Buffer.from(b.buffer, b.byteOffset, b.byteLength)),
    end: () => call.end(),
    close: () => client.close(),
  };
}

describe('keepd token create: an agent token for every source is asked for', () => {
  const tmp = tempDirs();
  it('--role agent without --source is refused (exit 2); --all-sources grants every source', async () => {
    const data = path.join(tmp.make('keep-token-src-'), 'data');
    await keepdInit(data);
    const r = await runKeepd(['token', 'create', '--role', 'agent', '--data', data]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^keepd: error: .*--source.*--all-sources/);
    expect(r.stdout).toBe('');
    expect((await keepdJson(['token', 'list', '--data', data])).length).toBe(0);
    const both = await runKeepd(['token', 'create', '--role', 'agent', '--source', 'x', '--all-sources', '--data', data]);
    expect(both.code).toBe(2);
    const all = await keepdJson(['token', 'create', '--role', 'agent', '--all-sources', '--data', data]);
    expect(all.sources).toEqual([]);
    const one = await keepdJson(['token', 'create', '--role', 'agent', '--source', 'web1', '--data', data]);
    expect(one.sources).toEqual(['web1']);
  });
});

describe('revoking a token ends its open calls', () => {
  const tmp = tempDirs();
  let data: string;
  let keepd: Keepd;
  let agent: Token;
  let admin: Token;
  let w: Wire;
  const enc = (schema: string, v: object) => w.protobuf.toBinary(w.proto[schema], w.protobuf.create(w.proto[schema], v));
  const dec = (schema: string, b: Uint8Array) => w.protobuf.fromBinary(w.proto[schema], b);

  beforeAll(async () => {
    w = await wire();
    data = path.join(tmp.make('keep-revoke-'), 'data');
    await keepdInit(data);
    agent = await createToken(data, 'agent', { sources: ['up'] });
    admin = await createToken(data, 'admin');
    keepd = await startKeepd(data);
    await keepJson(['init', '--kdf-cost', '12'], agentEnv(keepd, agent.token, PASSWORD));
  });

  afterAll(killAllKeepd);

  it('an Upload stream opened before `keepd token revoke` fails UNAUTHENTICATED on its first message REVOCATION_RECHECK_MS after it; nothing more is stored', async () => {
    const c = new RawClient(w.grpc, `127.0.0.1:${keepd.port}`, agent.token);
    const open = await c.unary('OpenSession', enc('OpenSessionRequestSchema', { source: 'up', host: 'revoke-test' }));
    expect(open.ok, JSON.stringify(open)).toBe(true);
    const sessionId = dec('OpenSessionResponseSchema', (open as any).body).sessionId;
    c.close();

    const first = sealedBlob(data, 'uploaded before the revoke');
    const second = sealedBlob(data, 'sent after the revoke: must not be stored');
    const s = uploadStream(w, keepd.port, agent.token);
    s.write(enc('UploadRequestSchema', { sessionId, id: first.id, data: first.bytes, storageHash: first.hash }));
    await waitFor(() => s.acks.length === 1, 30_000);
    const acked = Date.now();

    const rv = await runKeepd(['token', 'revoke', agent.id, '--data', data]);
    expect(rv.code, rv.stderr).toBe(0);
    // The bound: a stream's token is read again at its first message REVOCATION_RECHECK_MS after the last check.
    while (Date.now() - acked <= 2 * REVOCATION_RECHECK_MS) await new Promise((r) => setTimeout(r, 50));
    s.write(enc('UploadRequestSchema', { sessionId, id: second.id, data: second.bytes, storageHash: second.hash }));
    const st = await Promise.race([s.status, new Promise<{ code: number; details: string }>((r) => setTimeout(() => r({ code: -1, details: 'stream still open 20 s after the revoke' }), 20_000))]);
    s.end();
    s.close();
    expect(st.code, st.details).toBe(w.grpc.status.UNAUTHENTICATED);
    expect(st.details).toMatch(/revoked/);
    expect(s.acks).toHaveLength(1);

    // The admin reads the first blob back; the second is not in the repository.
    const a = new RawClient(w.grpc, `127.0.0.1:${keepd.port}`, admin.token);
    const got = await a.readBlobs(enc('ReadBlobsRequestSchema', { ids: [first.id] }));
    expect(got.code, got.details).toBe(w.grpc.status.OK);
    const missing = await a.readBlobs(enc('ReadBlobsRequestSchema', { ids: [second.id] }));
    expect(missing.code).toBe(w.grpc.status.NOT_FOUND);
    a.close();
  });
});

describe('a maximum session age', () => {
  const tmp = tempDirs();
  let w: Wire;
  const enc = (schema: string, v: object) => w.protobuf.toBinary(w.proto[schema], w.protobuf.create(w.proto[schema], v));
  const dec = (schema: string, b: Uint8Array) => w.protobuf.fromBinary(w.proto[schema], b);

  it('a session renewed by an empty Offer every 7 minutes is closed by the sweep past MAX_SESSION_AGE_MS (its next call gets a clear error); so is a revoked token\'s session', async () => {
    expect(MAX_SESSION_AGE_MS).toBe(24 * 60 * MIN);
    w = await wire();
    const data = path.join(tmp.make('keep-session-age-'), 'data');
    await keepdInit(data);
    const agent = await createToken(data, 'agent', { sources: ['long'] });
    // keepd in this process, on a clock the test moves (the same serve() `keepd serve` runs).
    const clock = new ManualClock(Date.now());
    const server = await serve({ data, listen: '127.0.0.1:0', metrics: '127.0.0.1:0', clock, log: createLogger('warn'), sweepIntervalMs: 100 });
    try {
      const c = new RawClient(w.grpc, `127.0.0.1:${server.port}`, agent.token);
      const open = await c.unary('OpenSession', enc('OpenSessionRequestSchema', { source: 'long', host: 'age-test' }));
      expect(open.ok, JSON.stringify(open)).toBe(true);
      const sessionId = dec('OpenSessionResponseSchema', (open as any).body).sessionId;
      const offer = () => c.unary('Offer', enc('OfferRequestSchema', { sessionId, ids: [] }));
      // Renewed every 7 minutes (its lease is 15) for 23 h 55 min: alive throughout.
      for (let t = 7 * MIN; t < MAX_SESSION_AGE_MS; t += 7 * MIN) {
        clock.set(clock.now() + 7 * MIN);
        const r = await offer();
        expect(r.ok, `offer at ${t / MIN} min: ${JSON.stringify(r)}`).toBe(true);
      }
      const sessionsOpen = async () => metricValue(await scrape(server.metricsPort!), 'keep_sessions_open');
      expect(await sessionsOpen()).toBe(1);
      // Six minutes later its lease still runs, but it is older than a day: the sweep closes it.
      clock.advance(6 * MIN);
      const until = Date.now() + 15_000;
      while ((await sessionsOpen()) !== 0) {
        if (Date.now() > until) throw new Error('the sweep did not close a session older than MAX_SESSION_AGE_MS');
        await new Promise((r) => setTimeout(r, 100));
      }
      const after = await offer();
      expect(after.ok).toBe(false);
      expect((after as any).details).toMatch(/maximum session age/);

      // A fresh session of a token revoked meanwhile (by `keepd token revoke`, another process) is closed by the sweep too.
      const again = await c.unary('OpenSession', enc('OpenSessionRequestSchema', { source: 'long', host: 'age-test' }));
      expect(again.ok, JSON.stringify(again)).toBe(true);
      expect(await sessionsOpen()).toBe(1);
      const rv = await runKeepd(['token', 'revoke', agent.id, '--data', data]);
      expect(rv.code, rv.stderr).toBe(0);
      const until2 = Date.now() + 15_000;
      while ((await sessionsOpen()) !== 0) {
        if (Date.now() > until2) throw new Error('the sweep did not close the session of a revoked token');
        await new Promise((r) => setTimeout(r, 100));
      }
      c.close();
    } finally {
      await server.shutdown();
    }
  });
});
