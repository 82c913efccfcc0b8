import crypto from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DEFAULT_SCRYPT,
  deriveKek,
  deriveKeys,
  KeepError,
  keyFileProblem,
  kdfProblem,
  KeyFile,
  MASTER_KEY_SIZE,
  newMasterKey,
  openMasterKey,
  parseKeyFile,
  Repository,
  unwrapMasterKey,
  wrapMasterKey,
} from '@keep/core';
import { expectKeepError, tempDir } from './util.js';

const FAST = { N: 1024, r: 8, p: 1 };
const meta = (extra: Partial<Parameters<typeof wrapMasterKey>[2]> = {}) => ({
  host: 'test-host',
  username: 'tester',
  created: new Date('2026-01-02T03:04:05.678Z'),
  scrypt: FAST,
  ...extra,
});
const clone = (f: KeyFile): KeyFile => JSON.parse(JSON.stringify(f));

describe('key files', () => {
  const master = newMasterKey();
  const file = wrapMasterKey(master, 'correct horse battery staple', meta());

  it('records what it was made with and hides the master key', () => {
    expect(master.length).toBe(MASTER_KEY_SIZE);
    expect(file.version).toBe(1);
    expect(file.id).toMatch(/^[0-9a-f]{16}$/);
    expect(file.created).toBe('2026-01-02T03:04:05.678Z');
    expect(file.kdf).toMatchObject({ name: 'scrypt', N: 1024, r: 8, p: 1 });
    expect(Buffer.from(file.kdf.salt, 'base64')).toHaveLength(16);
    expect(Buffer.from(file.nonce, 'base64')).toHaveLength(12);
    const data = Buffer.from(file.data, 'base64');
    expect(data).toHaveLength(MASTER_KEY_SIZE + 16);
    expect(data.includes(master)).toBe(false);
    expect(JSON.stringify(file)).not.toContain(master.toString('hex'));
    expect(JSON.stringify(file)).not.toContain(master.toString('base64'));
  });

  it('unwraps with the right passphrase', () => {
    const got = unwrapMasterKey(file, 'correct horse battery staple');
    expect(got).not.toBeNull();
    expect(got!.equals(master)).toBe(true);
    // Survives a trip through JSON text, as stored on disk.
    expect(unwrapMasterKey(parseKeyFile(JSON.stringify(file)), 'correct horse battery staple')!.equals(master)).toBe(true);
  });

  it('passphrases are compared after NFC normalisation', () => {
    const f = wrapMasterKey(master, 'caf\u00e9', meta());
    expect(unwrapMasterKey(f, 'cafe\u0301')!.equals(master)).toBe(true);
  });

  it('two wraps of the same key differ (fresh salt, nonce, id)', () => {
    const g = wrapMasterKey(master, 'correct horse battery staple', meta());
    expect(g.id).not.toBe(file.id);
    expect(g.kdf.salt).not.toBe(file.kdf.salt);
    expect(g.data).not.toBe(file.data);
    expect(unwrapMasterKey(g, 'correct horse battery staple')!.equals(master)).toBe(true);
  });

  it('a wrong passphrase returns null, and openMasterKey says WRONG_PASSWORD', async () => {
    expect(unwrapMasterKey(file, 'correct horse battery stapler')).toBeNull();
    expect(unwrapMasterKey(file, 'Correct horse battery staple')).toBeNull();
    await expectKeepError(() => openMasterKey([file], 'nope'), 'WRONG_PASSWORD');
  });

  it('refuses an empty passphrase and an empty key list', async () => {
    await expectKeepError(() => wrapMasterKey(master, '', meta()), 'INVALID_ARGUMENT');
    await expectKeepError(() => openMasterKey([], 'x'), 'NOT_A_REPOSITORY');
  });

  it('editing the KDF parameters, id, creation time, nonce or data makes unwrap fail', () => {
    const pass = 'correct horse battery staple';
    const edits: [string, (f: KeyFile) => void][] = [
      ['kdf.N', (f) => (f.kdf.N = 2048)],
      ['kdf.r', (f) => (f.kdf.r = 4)],
      ['kdf.p', (f) => (f.kdf.p = 2)],
      ['kdf.salt', (f) => (f.kdf.salt = crypto.randomBytes(16).toString('base64'))],
      ['id', (f) => (f.id = '0123456789abcdef')],
      ['created', (f) => (f.created = '2026-01-02T03:04:05.679Z')],
      ['nonce', (f) => (f.nonce = crypto.randomBytes(12).toString('base64'))],
      [
        'data (ciphertext byte)',
        (f) => {
          const d = Buffer.from(f.data, 'base64');
          d[3] ^= 1;
          f.data = d.toString('base64');
        },
      ],
      [
        'data (tag byte)',
        (f) => {
          const d = Buffer.from(f.data, 'base64');
          d[d.length - 1] ^= 0x80;
          f.data = d.toString('base64');
        },
      ],
    ];
    for (const [what, edit] of edits) {
      const f = clone(file);
      edit(f);
      expect(unwrapMasterKey(f, pass), `after editing ${what}`).toBeNull();
    }
    // The untouched file still opens (the edits above worked on copies).
    expect(unwrapMasterKey(file, pass)!.equals(master)).toBe(true);
  });

  it('a key file of the wrong length or unknown KDF is reported CORRUPT', async () => {
    const short = clone(file);
    short.data = Buffer.from(file.data, 'base64').subarray(1).toString('base64');
    await expectKeepError(() => unwrapMasterKey(short, 'correct horse battery staple'), 'CORRUPT');
    const kdf = clone(file);
    (kdf.kdf as { name: string }).name = 'argon2id';
    await expectKeepError(() => unwrapMasterKey(kdf, 'correct horse battery staple'), 'CORRUPT');
    await expectKeepError(() => parseKeyFile(JSON.stringify({ version: 2, id: 'x', data: '' })), 'CORRUPT');
  });

  it('KDF parameters scrypt refuses, or an unusable nonce, are CORRUPT too (a damaged file, not a crash)', async () => {
    const edits: [string, (f: KeyFile) => void][] = [
      ['N not a power of two', (f) => (f.kdf.N = 1000)],
      ['N zero', (f) => (f.kdf.N = 0)],
      ['r zero', (f) => (f.kdf.r = 0)],
      ['N out of range', (f) => (f.kdf.N = 2 ** 40)],
      ['N a string', (f) => ((f.kdf as unknown as { N: string }).N = '1024')],
      ['salt a number', (f) => ((f.kdf as unknown as { salt: number }).salt = 123)],
      ['empty nonce', (f) => (f.nonce = '')],
    ];
    for (const [what, edit] of edits) {
      const f = clone(file);
      edit(f);
      const e = await expectKeepError(() => unwrapMasterKey(f, 'correct horse battery staple'), 'CORRUPT');
      expect(e.message, what).toContain(`key file ${f.id} is damaged`);
      await expectKeepError(() => openMasterKey([f], 'correct horse battery staple'), 'CORRUPT');
    }
  });

  it('KDF bounds admit the default and every keep init --kdf-cost; N=2^20 p=2 is refused before scrypt runs', async () => {
    const salt = crypto.randomBytes(16).toString('base64');
    expect(kdfProblem({ name: 'scrypt', ...DEFAULT_SCRYPT, salt })).toBeUndefined();
    for (let cost = 10; cost <= 18; cost++) expect(kdfProblem({ name: 'scrypt', N: 2 ** cost, r: 8, p: 1, salt }), `cost ${cost}`).toBeUndefined();
    for (const bad of [{ N: 2 ** 20, r: 8, p: 2 }, { N: 2 ** 19, r: 8, p: 1 }, { N: 2 ** 18, r: 8, p: 2 }, { N: 2 ** 9, r: 8, p: 1 }, { N: 2 ** 15, r: 17, p: 1 }, { N: 2 ** 10, r: 1, p: 9 }]) {
      expect(kdfProblem({ name: 'scrypt', ...bad, salt }), JSON.stringify(bad)).toMatch(/bound/);
      const e = await deriveKek('pw', { name: 'scrypt', ...bad, salt }).then(() => undefined, (x: KeepError) => x);
      expect(e?.code, JSON.stringify(bad)).toBe('CORRUPT');
    }
    // The whole file: a valid one passes; the review's three are refused, each with why.
    expect(keyFileProblem(file)).toBeUndefined();
    const { kdf: _k, ...noKdf } = file;
    expect(keyFileProblem({ ...file, data: 'AAAA' })).toMatch(/wrong length/);
    expect(keyFileProblem(noKdf)).toMatch(/no kdf/);
    expect(keyFileProblem({ ...file, kdf: { ...file.kdf, N: 2 ** 20, p: 2 } })).toMatch(/bound/);
  });

  it('several key files wrap one master key: each passphrase opens it, and says which file', () => {
    const files = ['alpha passphrase', 'beta passphrase', 'gamma passphrase'].map((p) => ({ p, f: wrapMasterKey(master, p, meta()) }));
    const all = files.map((x) => x.f);
    for (const { p, f } of files) {
      const got = openMasterKey(all, p);
      expect(got.master.equals(master)).toBe(true);
      expect(got.keyId).toBe(f.id);
    }
    expect(() => openMasterKey(all, 'delta passphrase')).toThrow(/wrong passphrase/);
  });

  it('subkeys are deterministic per master key and distinct per purpose', () => {
    const a = deriveKeys(master);
    const b = deriveKeys(Buffer.from(master));
    const other = deriveKeys(newMasterKey());
    expect(a.chunkIdKey.equals(b.chunkIdKey)).toBe(true);
    expect(a.treeIdKey.equals(b.treeIdKey)).toBe(true);
    expect(a.chunkIdKey.equals(a.treeIdKey)).toBe(false);
    expect(a.chunkIdKey.equals(other.chunkIdKey)).toBe(false);
    const s1 = crypto.randomBytes(16);
    const s2 = crypto.randomBytes(16);
    expect(a.sealKey(s1).equals(b.sealKey(Buffer.from(s1)))).toBe(true);
    expect(a.sealKey(s1).equals(a.sealKey(s2))).toBe(false);
    expect(a.sealKey(s1).equals(a.chunkIdKey)).toBe(false);
    expect(a.sealKey(s1)).toHaveLength(32);
  });
});

describe('key files in a repository', () => {
  let t: ReturnType<typeof tempDir>;
  beforeAll(() => {
    t = tempDir('keys');
  });
  afterAll(() => t.cleanup());

  it('stores, lists and removes key files; any of them opens; the last one cannot be removed', async () => {
    const repo = await Repository.init(t.dir);
    try {
      const master = newMasterKey();
      const a = wrapMasterKey(master, 'first', meta());
      const b = wrapMasterKey(master, 'second', meta());
      repo.addKeyFile(a);
      repo.addKeyFile(b);
      const listed = repo.keyFiles();
      expect(listed.map((f) => f.id).sort()).toEqual([a.id, b.id].sort());
      expect(openMasterKey(listed, 'first').master.equals(master)).toBe(true);
      expect(openMasterKey(listed, 'second').master.equals(master)).toBe(true);
      await expectKeepError(() => openMasterKey(listed, 'third'), 'WRONG_PASSWORD');

      repo.removeKeyFile(a.id);
      expect(repo.keyFiles().map((f) => f.id)).toEqual([b.id]);
      await expectKeepError(() => openMasterKey(repo.keyFiles(), 'first'), 'WRONG_PASSWORD');
      await expectKeepError(() => repo.removeKeyFile(b.id), 'INVALID_ARGUMENT');
      await expectKeepError(() => repo.removeKeyFile('ffffffffffffffff'), 'NOT_FOUND');
      await expectKeepError(() => repo.addKeyFile({ ...b, id: '../../evil' }), 'INVALID_ARGUMENT');
      expect(openMasterKey(repo.keyFiles(), 'second').master.equals(master)).toBe(true);
    } finally {
      await repo.close();
    }
  });
});
