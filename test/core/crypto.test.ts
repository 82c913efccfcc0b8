import crypto from 'node:crypto';
import { createRequire } from 'node:module';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  chunkId,
  COMPRESSION_LEVELS,
  Compression,
  decodeTreePayload,
  deriveKeys,
  Edge,
  fileChunks,
  HEADER_SIZE,
  newMasterKey,
  openBlob,
  parseBlob,
  parseCompression,
  RepoKeys,
  sealData,
  sealTree,
  TAG_SIZE,
  toHex,
  TreeBuilder,
  TreeEntry,
  treeId,
} from '@keep/core';
import { BlobType, compressibleBytes, expectKeepError, ROOT, seededBytes } from './util.js';

const keys = deriveKeys(newMasterKey());
const salt = () => crypto.randomBytes(16);
const LEVELS = Object.keys(COMPRESSION_LEVELS) as Compression[];
const OVERHEAD = HEADER_SIZE + 1 + TAG_SIZE; // header, codec byte, GCM tag

/** A data blob sealed by hand, so tests can put arbitrary sealed plaintext (codec byte + body) under a valid tag. */
function handSeal(k: RepoKeys, id: Buffer, sealedPlaintext: Buffer): Buffer {
  const s = salt();
  const h = Buffer.alloc(HEADER_SIZE);
  h[0] = 1;
  h[1] = BlobType.Data;
  s.copy(h, 4);
  const nonce = crypto.randomBytes(12);
  nonce.copy(h, 20);
  const c = crypto.createCipheriv('aes-256-gcm', k.sealKey(s), nonce);
  c.setAAD(Buffer.concat([id, h]));
  return Buffer.concat([h, c.update(sealedPlaintext), c.final(), c.getAuthTag()]);
}

function entry(name: string, type: TreeEntry['type'], size = 0): Omit<TreeEntry, 'chunks' | 'subtree'> {
  return { name: Buffer.from(name), type, mode: type === 'dir' ? 0o755 : 0o644, uid: 1000, gid: 1000, mtime: [1700000000, 5], ctime: [1700000000, 6], ino: 42, dev: 1, nlink: 1, size };
}

describe('data blobs', () => {
  const inputs: [string, Buffer][] = [
    ['empty', Buffer.alloc(0)],
    ['1 byte', Buffer.of(7)],
    ['63 compressible bytes', compressibleBytes(63)],
    ['4 KiB compressible', compressibleBytes(4096)],
    ['1 MiB compressible', compressibleBytes(1 << 20)],
    ['4 KiB random', seededBytes('r4k', 4096)],
    ['1 MiB random', seededBytes('r1m', 1 << 20)],
  ];

  for (const level of LEVELS) {
    for (const [what, plain] of inputs) {
      it(`${level}: ${what} round-trips`, () => {
        const id = chunkId(keys, plain);
        const stored = sealData(keys, salt(), id, plain, level);
        const p = parseBlob(stored);
        expect(p.type).toBe(BlobType.Data);
        expect(p.edges).toEqual([]);
        expect(p.bodyOffset).toBe(HEADER_SIZE);
        const got = openBlob(keys, id, stored);
        expect(got.type).toBe(BlobType.Data);
        expect(got.plaintext.equals(plain)).toBe(true);
        // The plaintext never appears in the stored bytes.
        if (plain.length >= 64) expect(stored.includes(plain.subarray(0, 64))).toBe(false);
      });
    }
  }

  it('compressible data gets smaller at every level but none', () => {
    const plain = compressibleBytes(1 << 20);
    const id = chunkId(keys, plain);
    const sizes = Object.fromEntries(LEVELS.map((l) => [l, sealData(keys, salt(), id, plain, l).length]));
    expect(sizes.none).toBe(plain.length + OVERHEAD);
    for (const l of ['low', 'medium', 'high'] as const) expect(sizes[l]).toBeLessThan(plain.length / 10);
    expect(sizes.high).toBeLessThanOrEqual(sizes.low);
  });

  it('random data is stored raw: plaintext + 32 header + 1 codec + 16 tag', () => {
    for (const n of [100, 4096, 70_000, 1 << 20]) {
      const plain = seededBytes(`raw-${n}`, n);
      for (const l of LEVELS) expect(sealData(keys, salt(), chunkId(keys, plain), plain, l).length).toBe(n + OVERHEAD);
    }
  });

  it('a chunk that starts incompressible and goes on compressible is still compressed (the probe samples more than the start)', () => {
    const text = compressibleBytes(768 * 1024);
    for (const plain of [
      Buffer.concat([seededBytes('head', 256 * 1024), text]),
      Buffer.concat([text, seededBytes('tail', 256 * 1024)]),
      Buffer.concat([seededBytes('a', 200 * 1024), compressibleBytes(300 * 1024), seededBytes('b', 200 * 1024)]),
    ]) {
      const sealed = sealData(keys, salt(), chunkId(keys, plain), plain, 'medium');
      expect(sealed.length).toBeLessThan(plain.length * 0.6);
    }
  });

  it('chunk ids are keyed: the same bytes get different ids under different master keys', () => {
    const plain = compressibleBytes(1000);
    expect(chunkId(keys, plain).equals(chunkId(keys, Buffer.from(plain)))).toBe(true);
    expect(chunkId(keys, plain).equals(chunkId(deriveKeys(newMasterKey()), plain))).toBe(false);
    expect(chunkId(keys, plain)).toHaveLength(32);
  });

  it('ids do not depend on what was hashed before (one hasher per key, reset for each id)', () => {
    // The reference: a fresh keyed BLAKE3 hasher of the same library for every id.
    const { Blake3Hasher } = createRequire(path.join(ROOT, 'packages/core/package.json'))('@napi-rs/blake-hash');
    const other = deriveKeys(newMasterKey());
    for (const size of [0, 1, 400, 1025, 70_000]) {
      const plain = seededBytes(`ids-${size}`, size);
      for (const k of [keys, other, keys]) {
        expect(chunkId(k, plain).equals(Blake3Hasher.newKeyed(k.chunkIdKey).update(plain).digestBuffer())).toBe(true);
        expect(treeId(k, [], plain).equals(chunkId(k, plain))).toBe(false);
      }
    }
  });

  it('sealing the same chunk twice gives different bytes (fresh nonce) that both open', () => {
    const plain = compressibleBytes(5000);
    const id = chunkId(keys, plain);
    const s = salt();
    const a = sealData(keys, s, id, plain, 'medium');
    const b = sealData(keys, s, id, plain, 'medium');
    expect(a.equals(b)).toBe(false);
    expect(openBlob(keys, id, a).plaintext.equals(plain)).toBe(true);
    expect(openBlob(keys, id, b).plaintext.equals(plain)).toBe(true);
    expect(parseBlob(a).salt.equals(s)).toBe(true);
  });

  it('nonces never repeat across refills of the nonce pool, for data and tree blobs alike', () => {
    const plain = compressibleBytes(100);
    const id = chunkId(keys, plain);
    const s = salt();
    const seen = new Set<string>();
    for (let i = 0; i < 800; i++) {
      const blob = i % 2 ? sealData(keys, s, id, plain, 'low') : sealTree(keys, s, [], plain, 'low').bytes;
      seen.add(toHex(parseBlob(blob).nonce));
    }
    expect(seen.size).toBe(800); // 800 x 12 bytes spans two refills of the 4 KiB pool
  });

  it('a flipped byte anywhere in a sealed blob is CORRUPT', async () => {
    for (const [plain, level] of [
      [compressibleBytes(3000), 'high'],
      [seededBytes('flip', 300), 'none'],
    ] as const) {
      const id = chunkId(keys, plain);
      const stored = sealData(keys, salt(), id, plain, level);
      for (let i = 0; i < stored.length; i++) {
        for (const mask of [0x01, 0x80]) {
          const bad = Buffer.from(stored);
          bad[i] ^= mask;
          await expectKeepError(() => openBlob(keys, id, bad), 'CORRUPT');
        }
      }
      expect(openBlob(keys, id, stored).plaintext.equals(plain)).toBe(true);
    }
  });

  it('truncated or extended blobs are CORRUPT', async () => {
    const plain = compressibleBytes(3000);
    const id = chunkId(keys, plain);
    const stored = sealData(keys, salt(), id, plain, 'low');
    for (const n of [0, 10, HEADER_SIZE, OVERHEAD - 1, OVERHEAD, stored.length - 1]) await expectKeepError(() => openBlob(keys, id, stored.subarray(0, n)), 'CORRUPT');
    await expectKeepError(() => openBlob(keys, id, Buffer.concat([stored, Buffer.of(0)])), 'CORRUPT');
  });

  it('opening with the wrong id or another repository key fails', async () => {
    const plain = seededBytes('wrong-id', 2000);
    const id = chunkId(keys, plain);
    const stored = sealData(keys, salt(), id, plain, 'low');
    const otherId = chunkId(keys, seededBytes('other', 2000));
    const e = await expectKeepError(() => openBlob(keys, otherId, stored), 'CORRUPT');
    expect(e.message).toContain(toHex(otherId));
    await expectKeepError(() => openBlob(deriveKeys(newMasterKey()), id, stored), 'CORRUPT');
  });

  it('a blob sealed under an id that is not its content hash is CORRUPT on open', async () => {
    const plain = compressibleBytes(2000);
    const lie = chunkId(keys, Buffer.from('something else'));
    const stored = sealData(keys, salt(), lie, plain, 'low');
    const e = await expectKeepError(() => openBlob(keys, lie, stored), 'CORRUPT');
    expect(e.message).toMatch(/different id/);
  });

  it('an authentic blob with an unknown codec or a broken zstd frame is CORRUPT', async () => {
    const id = chunkId(keys, Buffer.from('x'));
    const unknown = handSeal(keys, id, Buffer.concat([Buffer.of(9), Buffer.from('x')]));
    expect((await expectKeepError(() => openBlob(keys, id, unknown), 'CORRUPT')).message).toMatch(/codec/);
    const broken = handSeal(keys, id, Buffer.concat([Buffer.of(1), Buffer.from('definitely not a zstd frame')]));
    expect((await expectKeepError(() => openBlob(keys, id, broken), 'CORRUPT')).message).toMatch(/zstd/);
    // The same hand-sealing with a correct raw body opens, so the failures above are the codec's.
    const ok = handSeal(keys, id, Buffer.concat([Buffer.of(0), Buffer.from('x')]));
    expect(openBlob(keys, id, ok).plaintext.toString()).toBe('x');
  });

  it('parseCompression accepts the four levels only', async () => {
    for (const l of LEVELS) expect(parseCompression(l)).toBe(l);
    await expectKeepError(() => parseCompression('ultra'), 'INVALID_ARGUMENT');
  });
});

describe('tree blobs', () => {
  const d1 = chunkId(keys, Buffer.from('chunk one'));
  const d2 = chunkId(keys, Buffer.from('chunk two'));
  const sub = treeId(keys, [], Buffer.from('empty dir payload'));
  const edges: Edge[] = [
    { type: BlobType.Data, id: d1 },
    { type: BlobType.Tree, id: sub },
    { type: BlobType.Data, id: d2 },
  ];
  const payload = compressibleBytes(5000);

  it('edges are readable without a key and match; the payload opens with the key', () => {
    const { id, bytes } = sealTree(keys, salt(), edges, payload, 'medium');
    const p = parseBlob(bytes);
    expect(p.type).toBe(BlobType.Tree);
    expect(p.bodyOffset).toBe(HEADER_SIZE + 4 + 3 * 33);
    expect(p.edges.map((e) => [e.type, toHex(e.id)])).toEqual(edges.map((e) => [e.type, toHex(e.id)]));
    const got = openBlob(keys, id, bytes);
    expect(got.type).toBe(BlobType.Tree);
    expect(got.plaintext.equals(payload)).toBe(true);
    expect(got.edges.map((e) => toHex(e.id))).toEqual(edges.map((e) => toHex(e.id)));
    // Compressed: smaller than the payload alone.
    expect(bytes.length).toBeLessThan(payload.length);
    expect(bytes.includes(payload.subarray(0, 64))).toBe(false);
  });

  it('a tree with no edges and with many edges round-trips', () => {
    for (const n of [0, 1000]) {
      const many: Edge[] = Array.from({ length: n }, (_, i) => ({ type: i % 7 === 0 ? BlobType.Tree : BlobType.Data, id: chunkId(keys, Buffer.from(`c${i}`)) }));
      const { id, bytes } = sealTree(keys, salt(), many, payload, 'low');
      expect(parseBlob(bytes).edges).toHaveLength(n);
      const got = openBlob(keys, id, bytes);
      expect(got.plaintext.equals(payload)).toBe(true);
      expect(got.edges.every((e, i) => e.type === many[i].type && e.id.equals(many[i].id))).toBe(true);
    }
  });

  it('tree ids are deterministic, depend on edges and payload, and never equal chunk ids of the same bytes', () => {
    const a = sealTree(keys, salt(), edges, payload, 'medium');
    const b = sealTree(keys, salt(), edges, payload, 'none');
    expect(a.id.equals(b.id)).toBe(true);
    expect(a.bytes.equals(b.bytes)).toBe(false);
    expect(treeId(keys, edges, payload).equals(a.id)).toBe(true);
    expect(openBlob(keys, a.id, b.bytes).plaintext.equals(payload)).toBe(true);

    const reordered = [edges[2], edges[1], edges[0]];
    expect(treeId(keys, reordered, payload).equals(a.id)).toBe(false);
    const retyped = edges.map((e, i) => (i === 0 ? { type: BlobType.Tree, id: e.id } : e));
    expect(treeId(keys, retyped, payload).equals(a.id)).toBe(false);
    expect(treeId(keys, edges, Buffer.concat([payload, Buffer.of(0)])).equals(a.id)).toBe(false);

    // Same bytes as a chunk: different id (separate key, and edges are hashed in).
    const empty = treeId(keys, [], payload);
    expect(empty.equals(chunkId(keys, payload))).toBe(false);
    expect(empty.equals(chunkId(keys, Buffer.concat([Buffer.alloc(4), payload])))).toBe(false);
    // And under another master key the tree id changes.
    expect(treeId(deriveKeys(newMasterKey()), edges, payload).equals(a.id)).toBe(false);
  });

  it('a flipped byte anywhere in a tree blob (edges included) is CORRUPT', async () => {
    const { id, bytes } = sealTree(keys, salt(), edges, Buffer.from('small payload'), 'none');
    for (let i = 0; i < bytes.length; i++) {
      const bad = Buffer.from(bytes);
      bad[i] ^= 0x01;
      await expectKeepError(() => openBlob(keys, id, bad), 'CORRUPT');
    }
  });

  it('parseBlob rejects malformed structure', async () => {
    const { bytes } = sealTree(keys, salt(), edges, payload, 'none');
    const version = Buffer.from(bytes);
    version[0] = 2;
    expect((await expectKeepError(() => parseBlob(version), 'CORRUPT')).message).toMatch(/version/);
    const type = Buffer.from(bytes);
    type[1] = 5;
    expect((await expectKeepError(() => parseBlob(type), 'CORRUPT')).message).toMatch(/type/);
    const count = Buffer.from(bytes);
    count.writeUInt32BE(0xffffff, HEADER_SIZE);
    expect((await expectKeepError(() => parseBlob(count), 'CORRUPT')).message).toMatch(/edges/);
    const edgeType = Buffer.from(bytes);
    edgeType[HEADER_SIZE + 4] = 9;
    expect((await expectKeepError(() => parseBlob(edgeType), 'CORRUPT')).message).toMatch(/edge 0/);
  });
});

describe('tree nodes', () => {
  it('TreeBuilder sorts by name bytes, renumbers edges, and decodes back', () => {
    const ids = Array.from({ length: 5 }, (_, i) => chunkId(keys, Buffer.from(`chunk ${i}`)));
    const subId = treeId(keys, [], Buffer.from('sub'));
    const b = new TreeBuilder();
    b.addFile(entry('zeta.txt', 'file', 300), [ids[0], ids[1]]);
    b.addDir(entry('docs', 'dir'), subId);
    b.addSymlink({ ...entry('link', 'symlink'), target: Buffer.from('zeta.txt') });
    b.addFile(entry('alpha.bin', 'file', 500), [ids[2], ids[3], ids[4]]);
    b.addFile({ ...entry('x', 'file'), name: Buffer.from([0xff, 0xfe]) }, []);
    const built = b.build();
    expect(built.entries.map((e) => e.name.toString('hex'))).toEqual(
      [Buffer.from('alpha.bin'), Buffer.from('docs'), Buffer.from('link'), Buffer.from('zeta.txt'), Buffer.from([0xff, 0xfe])].map((n) => n.toString('hex')),
    );
    expect(built.edges.map((e) => toHex(e.id))).toEqual([ids[2], ids[3], ids[4], subId, ids[0], ids[1]].map(toHex));

    const { id, bytes } = sealTree(keys, salt(), built.edges, built.payload, 'medium');
    const opened = openBlob(keys, id, bytes);
    const node = decodeTreePayload(opened.plaintext, opened.edges);
    const byName = new Map(node.entries.map((e) => [e.name.toString('latin1'), e]));
    expect(fileChunks(node, byName.get('alpha.bin')!).map(toHex)).toEqual([ids[2], ids[3], ids[4]].map(toHex));
    expect(fileChunks(node, byName.get('zeta.txt')!).map(toHex)).toEqual([ids[0], ids[1]].map(toHex));
    expect(node.edges[byName.get('docs')!.subtree!].id.equals(subId)).toBe(true);
    expect(byName.get('link')!.target!.toString()).toBe('zeta.txt');
    expect(byName.get('\xff\xfe')!.name.equals(Buffer.from([0xff, 0xfe]))).toBe(true);
    expect(byName.get('zeta.txt')!.mtime).toEqual([1700000000, 5]);

    // Same directory built in another order: same id.
    const b2 = new TreeBuilder();
    b2.addFile({ ...entry('x', 'file'), name: Buffer.from([0xff, 0xfe]) }, []);
    b2.addFile(entry('alpha.bin', 'file', 500), [ids[2], ids[3], ids[4]]);
    b2.addSymlink({ ...entry('link', 'symlink'), target: Buffer.from('zeta.txt') });
    b2.addDir(entry('docs', 'dir'), subId);
    b2.addFile(entry('zeta.txt', 'file', 300), [ids[0], ids[1]]);
    const built2 = b2.build();
    expect(treeId(keys, built2.edges, built2.payload).equals(id)).toBe(true);
  });

  it('decodeTreePayload rejects garbage and entries pointing past the edges', async () => {
    await expectKeepError(() => decodeTreePayload(Buffer.from([0xc1]), []), 'CORRUPT');
    const b = new TreeBuilder();
    b.addFile(entry('f', 'file'), [chunkId(keys, Buffer.from('a'))]);
    const built = b.build();
    await expectKeepError(() => decodeTreePayload(built.payload, []), 'CORRUPT');
    const d = new TreeBuilder();
    d.addDir(entry('d', 'dir'), treeId(keys, [], Buffer.alloc(0)));
    const dd = d.build();
    // A subtree edge that is a data edge is refused.
    await expectKeepError(() => decodeTreePayload(dd.payload, [{ type: BlobType.Data, id: dd.edges[0].id }]), 'CORRUPT');
    expect(decodeTreePayload(dd.payload, dd.edges).entries).toHaveLength(1);
  });
});
