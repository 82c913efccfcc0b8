/**
 * Revoking a token ends its open ReadBlobs stream (issue 13, item 10): a
 * restore-sized read that is under way when `keepd token revoke` runs (in
 * another process) fails UNAUTHENTICATED at its next read batch instead of
 * streaming the rest of the repository to a credential that no longer holds.
 */
import fs from 'node:fs';
import path from 'node:path';
import { readTrailer } from '@keep/core';
import { afterAll, describe, expect, it } from 'vitest';
import { writeRandom } from './gc-util.js';
import { tempDirs } from './helpers.js';
import { agentEnv, createToken, keepdInit, keepJson, killAllKeepd, runKeepd, startKeepd, wire } from './keepd-harness.js';

const PASSWORD = 'revoke read stream';

describe('keepd token revoke ends an open ReadBlobs stream', () => {
  const tmp = tempDirs();
  afterAll(killAllKeepd);

  it('a ReadBlobs stream opened before the revoke fails UNAUTHENTICATED and does not deliver the rest', async () => {
    const dir = tmp.make('keep-revoke-read-');
    const data = path.join(dir, 'data');
    await keepdInit(data);
    const agent = await createToken(data, 'agent', { sources: ['rd'] });
    const keepd = await startKeepd(data);
    const env = agentEnv(keepd, agent.token, PASSWORD);
    await keepJson(['init', '--kdf-cost', '12'], env);
    const src = path.join(dir, 'src');
    fs.mkdirSync(src);
    for (let i = 0; i < 24; i++) writeRandom(path.join(src, `f${i}.bin`), 1024 * 1024);
    await keepJson(['backup', '--source', 'rd', src], env);

    // Every blob the backup stored, as the packs list them (all of them the source's own).
    const ids: Buffer[] = [];
    for (const sub of fs.readdirSync(path.join(data, 'packs'))) {
      for (const n of fs.readdirSync(path.join(data, 'packs', sub))) for (const e of await readTrailer(path.join(data, 'packs', sub, n))) ids.push(e.id);
    }
    expect(ids.length).toBeGreaterThan(24);

    const { grpc, protobuf, proto } = await wire();
    const client = new grpc.Client(`127.0.0.1:${keepd.port}`, grpc.credentials.createInsecure());
    const md = new grpc.Metadata();
    md.set('authorization', `Bearer ${agent.token}`);
    const req = protobuf.toBinary(proto.ReadBlobsRequestSchema, protobuf.create(proto.ReadBlobsRequestSchema, { ids, maxMessageBytes: 0 }));
    const call = client.makeServerStreamRequest('/keep.v1.RepositoryService/ReadBlobs', (b: Buffer) => b, (b: Buffer) => b, Buffer.from(req), md, { deadline: Date.now() + 120_000 });
    let received = 0;
    const status = new Promise<{ code: number; details: string }>((resolve) => call.on('status', (s: { code: number; details: string }) => resolve(s)));
    call.on('error', () => undefined);
    // Take one message, then hold the stream (HTTP/2 flow control stops keepd) while the token is revoked.
    await new Promise<void>((resolve) =>
      call.once('data', () => {
        received++;
        call.pause();
        resolve();
      }),
    );
    call.on('data', () => received++);
    const rv = await runKeepd(['token', 'revoke', agent.id, '--data', data]);
    expect(rv.code, rv.stderr).toBe(0);
    call.resume();
    const st = await status;
    client.close();

    expect(st.code, st.details).toBe(grpc.status.UNAUTHENTICATED);
    expect(st.details).toMatch(/revoked/);
    expect(received).toBeLessThan(ids.length);
  }, 180_000);
});
