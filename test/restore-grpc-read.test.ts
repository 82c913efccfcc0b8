/**
 * The read side of a restore through a real keepd: ReadBlobs answers one blob
 * per message to a client that does not set max_message_bytes (an older agent,
 * a replica's sync) and gathers several per message, in request order, to one
 * that does; a missing blob ends the stream only after the blobs before it;
 * and `keep restore` of a tree whose blob was damaged on the server fails
 * clearly (DATA_LOSS), naming the blob.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compareTrees, flipByte, generateTree, MiB, PackBlob, packBlobs, packFiles, restoredPath, tempDirs, TreeInfo } from './helpers.js';
import { agentEnv, createToken, Keepd, keepdInit, keepJson, killAllKeepd, RawClient, runKeep, startKeepd, Token, wire } from './keepd-harness.js';

describe('ReadBlobs and restore over gRPC', () => {
  const tmp = tempDirs();
  let data: string;
  let keepd: Keepd;
  let admin: Token;
  let env: Record<string, string | undefined>;
  let tree: TreeInfo;
  /** data blobs in pack order, as the pack trailers list them */
  let blobs: PackBlob[];
  const stored = (b: PackBlob) => {
    const fd = fs.openSync(b.pack, 'r');
    try {
      const out = Buffer.alloc(b.length);
      fs.readSync(fd, out, 0, b.length, b.offset);
      return out;
    } finally {
      fs.closeSync(fd);
    }
  };

  beforeAll(async () => {
    const dir = tmp.make('keep-grpc-read-');
    data = path.join(dir, 'data');
    await keepdInit(data);
    const agent = await createToken(data, 'agent', { sources: ['files'] });
    admin = await createToken(data, 'admin');
    keepd = await startKeepd(data);
    env = agentEnv(keepd, agent.token);
    tree = generateTree(path.join(dir, 'src'), { largeFiles: [2 * MiB], smallFiles: 300 });
    await keepJson(['init', '--kdf-cost', '12'], env);
    await keepJson(['backup', tree.root, '--source', 'files'], env);
    blobs = packFiles(data)
      .flatMap((f) => packBlobs(f))
      .filter((b) => b.type === 0)
      .sort((a, b) => a.pack.localeCompare(b.pack) || a.offset - b.offset);
    expect(blobs.length).toBeGreaterThan(100);
  });

  afterAll(killAllKeepd);

  /** Call ReadBlobs; the decoded messages and the final status. */
  async function read(ids: Buffer[], maxMessageBytes: number) {
    const { grpc, protobuf, proto } = await wire();
    const c = new RawClient(grpc, `127.0.0.1:${keepd.port}`, admin.token);
    try {
      const req = protobuf.toBinary(proto.ReadBlobsRequestSchema, protobuf.create(proto.ReadBlobsRequestSchema, { ids, maxMessageBytes }));
      const r = await c.readBlobs(req);
      return { ...r, messages: r.responses.map((b) => protobuf.fromBinary(proto.ReadBlobsResponseSchema, b)) };
    } finally {
      c.close();
    }
  }

  const hex = (u: Uint8Array) => Buffer.from(u).toString('hex');

  it('one blob per message unless the client asks for more; several per message in request order when it does', async () => {
    const want = blobs.slice(0, 200);
    // Not pack order: a run is read together only when it lies together, and order is the request's.
    const ids = [...want.slice(100), ...want.slice(0, 100)].map((b) => Buffer.from(b.id, 'hex'));

    const single = await read(ids, 0);
    expect(single.code).toBe(0);
    expect(single.messages).toHaveLength(ids.length);
    expect(single.messages.map((m: any) => hex(m.id))).toEqual(ids.map((i) => i.toString('hex')));
    for (const m of single.messages) expect(m.blobs).toHaveLength(0);

    const gathered = await read(ids, 64 * 1024);
    expect(gathered.code).toBe(0);
    expect(gathered.messages.length).toBeLessThan(ids.length / 4);
    const got = gathered.messages.flatMap((m: any) => m.blobs);
    expect(got.map((b: any) => hex(b.id))).toEqual(ids.map((i) => i.toString('hex')));
    const byId = new Map(want.map((b) => [b.id, b]));
    for (const b of got) {
      const loc = byId.get(hex(b.id))!;
      expect(Buffer.from(b.data).equals(stored(loc))).toBe(true);
      expect(b.storageHash).toHaveLength(32);
    }
    for (const m of gathered.messages) {
      expect(m.id).toHaveLength(0);
      // A message exceeds the asked size only when it carries one blob larger than that.
      const size = m.blobs.reduce((n: number, b: any) => n + b.data.length, 0);
      if (m.blobs.length > 1) expect(size).toBeLessThanOrEqual(64 * 1024);
    }
  });

  it('a missing blob: those before it arrive, then NOT_FOUND names it', async () => {
    const missing = Buffer.alloc(32, 0xab);
    const ids = [...blobs.slice(0, 20).map((b) => Buffer.from(b.id, 'hex')), missing, Buffer.from(blobs[20].id, 'hex')];
    for (const max of [0, 1024 * 1024]) {
      const r = await read(ids, max);
      expect(r.code).toBe(5); // NOT_FOUND
      expect(r.details).toContain(missing.toString('hex'));
      const got = r.messages.flatMap((m: any) => (m.blobs.length ? m.blobs : [m])).map((b: any) => hex(b.id));
      expect(got).toEqual(blobs.slice(0, 20).map((b) => b.id));
    }
  });

  it('keep restore over gRPC is byte-identical, and fails clearly on a blob damaged on the server', async () => {
    const good = tmp.make('keep-grpc-read-out-');
    const ok = await runKeep(['restore', 'latest', '--source', 'files', '--target', good], env);
    expect(ok.code, ok.stderr).toBe(0);
    expect(compareTrees(tree.root, restoredPath(good, tree.root), { rootMeta: true })).toEqual([]);

    // Damage a small file's blob in the middle of a run that is read in one piece.
    const victim = blobs[Math.floor(blobs.length / 2)];
    flipByte(victim.pack, victim.offset + Math.floor(victim.length / 2));
    const bad = tmp.make('keep-grpc-read-out-');
    const r = await runKeep(['restore', 'latest', '--source', 'files', '--target', bad], env);
    expect(r.code).toBe(4);
    expect(r.stderr).toContain(victim.id);
    expect(r.stderr).toMatch(/damaged/);
  });
});
