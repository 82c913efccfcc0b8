/**
 * Key files are the one thing every command of every token reads, so one bad
 * key file must not lock anybody out (issue 13, item 2): keepd validates a
 * key file on AddKey (structure, lengths, KDF bounds), unlock skips a damaged
 * or out-of-bounds one with a warning (and never runs scrypt beyond the
 * bounds), and an agent token adds only the first key of a repository.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compareTrees, restoredPath, tempDirs } from './helpers.js';
import { agentEnv, createToken, Keepd, keepdInit, keepJson, killAllKeepd, RawClient, runKeep, startKeepd, Token, wire } from './keepd-harness.js';

const PASSWORD = 'key file validation';

/** The three key files of the review: bad data length, no kdf at all, scrypt N=2^20 p=2 (15 s and 1.1 GB per command). */
function badKeyFiles(valid: any): Record<string, any> {
  const { kdf: _kdf, ...noKdf } = valid;
  return {
    '0000000000000000': { ...valid, id: '0000000000000000', data: 'AAAA' },
    '0000000000000001': { ...noKdf, id: '0000000000000001' },
    '0000000000000002': { ...valid, id: '0000000000000002', kdf: { ...valid.kdf, N: 2 ** 20, p: 2 } },
  };
}

function validKeyFile(data: string): any {
  const name = fs.readdirSync(path.join(data, 'keys')).find((n) => n.endsWith('.json'))!;
  return JSON.parse(fs.readFileSync(path.join(data, 'keys', name), 'utf8'));
}

describe('key files: validated on AddKey, skipped when damaged, added by admins once initialized', () => {
  const tmp = tempDirs();
  let dir: string;
  let data: string;
  let keepd: Keepd;
  let agent: Token;
  let admin: Token;
  let src: string;
  let w: Awaited<ReturnType<typeof wire>>;
  const enc = (schema: string, v: object) => w.protobuf.toBinary(w.proto[schema], w.protobuf.create(w.proto[schema], v));
  const env = (t: Token) => agentEnv(keepd, t.token, PASSWORD);

  /** Every command the agent and the admin run still works. */
  async function everyoneStillWorks(tag: string): Promise<void> {
    for (const t of [agent, admin]) {
      const list = await runKeep(['snapshots', '--json'], env(t));
      expect(list.code, list.stderr).toBe(0);
    }
    fs.writeFileSync(path.join(src, `${tag}.txt`), `written for ${tag}\n`.repeat(100));
    const b = await runKeep(['backup', src, '--source', 'files', '--json'], env(agent));
    expect(b.code, b.stderr).toBe(0);
    const target = path.join(dir, `restore-${tag}`);
    const r = await runKeep(['restore', 'latest', '--source', 'files', '--target', target], env(admin));
    expect(r.code, r.stderr).toBe(0);
    expect(compareTrees(src, restoredPath(target, src))).toEqual([]);
  }

  beforeAll(async () => {
    w = await wire();
    dir = tmp.make('keep-keyfile-');
    data = path.join(dir, 'data');
    await keepdInit(data);
    agent = await createToken(data, 'agent', { sources: ['files'] });
    admin = await createToken(data, 'admin');
    keepd = await startKeepd(data);
    // The first key of a repository comes from an agent's `keep init`.
    await keepJson(['init', '--kdf-cost', '12'], env(agent));
    src = path.join(dir, 'src');
    fs.mkdirSync(src);
    fs.writeFileSync(path.join(src, 'a.txt'), 'some data\n'.repeat(1000));
    await keepJson(['backup', src, '--source', 'files'], env(agent));
  });

  afterAll(killAllKeepd);

  it('AddKey refuses each bad key file (INVALID_ARGUMENT, nothing written); every command still works', async () => {
    const c = new RawClient(w.grpc, `127.0.0.1:${keepd.port}`, admin.token);
    const before = fs.readdirSync(path.join(data, 'keys')).sort();
    for (const [id, f] of Object.entries(badKeyFiles(validKeyFile(data)))) {
      const r = await c.unary('AddKey', enc('AddKeyRequestSchema', { keyFileJson: JSON.stringify(f) }));
      expect(r.ok, `${id} was accepted`).toBe(false);
      expect((r as any).code).toBe(w.grpc.status.INVALID_ARGUMENT);
      expect((r as any).details).toMatch(/key file/);
    }
    // Not JSON, the wrong shape, an id that is not 16 hex digits, an unknown KDF, r and salt out of bounds.
    const valid = validKeyFile(data);
    for (const text of ['AAAA', '[]', JSON.stringify({ ...valid, id: '../../../etc/x' }), JSON.stringify({ ...valid, id: 'abcdabcdabcdabc1', kdf: { ...valid.kdf, name: 'argon9' } }), JSON.stringify({ ...valid, id: 'abcdabcdabcdabc2', kdf: { ...valid.kdf, r: 1000 } }), JSON.stringify({ ...valid, id: 'abcdabcdabcdabc3', kdf: { ...valid.kdf, salt: '' } })]) {
      const r = await c.unary('AddKey', enc('AddKeyRequestSchema', { keyFileJson: text }));
      expect(r.ok, `${text.slice(0, 80)} was accepted`).toBe(false);
      expect((r as any).code).toBe(w.grpc.status.INVALID_ARGUMENT);
    }
    c.close();
    expect(fs.readdirSync(path.join(data, 'keys')).sort()).toEqual(before);
    await everyoneStillWorks('after-addkey');
  });

  it('bad key files written straight into keys/ are skipped with a warning; every command of every token still works', async () => {
    const bad = badKeyFiles(validKeyFile(data));
    for (const [id, f] of Object.entries(bad)) fs.writeFileSync(path.join(data, 'keys', `${id}.json`), JSON.stringify(f));
    fs.writeFileSync(path.join(data, 'keys', '000000000000000f.json'), 'not json at all');
    try {
      await everyoneStillWorks('after-direct-write');
      // keepd leaves them out of GetConfig (older agents would stop at them) and says so in its log.
      const warned = keepd.output().split('\n').filter((l) => l.includes('skipping a damaged key file'));
      for (const id of [...Object.keys(bad), '000000000000000f']) expect(warned.some((l) => l.includes(`"key":"${id}"`)), keepd.output().slice(-3000)).toBe(true);
      // An admin removes a damaged key file like any other.
      const rm = await runKeep(['key', 'remove', '0000000000000000', '--json'], env(admin));
      expect(rm.code, rm.stderr).toBe(0);
      expect(fs.existsSync(path.join(data, 'keys', '0000000000000000.json'))).toBe(false);
    } finally {
      for (const id of [...Object.keys(bad), '000000000000000f']) fs.rmSync(path.join(data, 'keys', `${id}.json`), { force: true });
    }
  });

  it('a local repository with the same bad key files still opens (warning, no scrypt beyond the bounds)', async () => {
    const repo = path.join(dir, 'local');
    const lenv = { KEEP_REPO: repo, KEEP_PASSWORD: PASSWORD };
    await keepJson(['init', '--kdf-cost', '12'], lenv);
    for (const [id, f] of Object.entries(badKeyFiles(validKeyFile(repo)))) fs.writeFileSync(path.join(repo, 'keys', `${id}.json`), JSON.stringify(f));
    const b = await runKeep(['backup', src, '--source', 'local', '--json'], lenv);
    expect(b.code, b.stderr).toBe(0);
    expect(b.stderr).toMatch(/warning: .*key file 0000000000000002.*(bound|scrypt)/);
    const list = await runKeep(['key', 'list', '--json'], lenv);
    expect(list.code, list.stderr).toBe(0);
  });

  it('an agent token adds a key only to a repository without one; later keys need an admin', async () => {
    const refused = await runKeep(['key', 'add', '--kdf-cost', '12'], { ...env(agent), KEEP_NEW_PASSWORD: 'second passphrase' });
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/^keep: error: .*admin/m);
    const passwd = await runKeep(['key', 'passwd', '--kdf-cost', '12'], { ...env(agent), KEEP_NEW_PASSWORD: 'second passphrase' });
    expect(passwd.code).not.toBe(0);
    expect(passwd.stderr).toMatch(/admin/);
    expect(fs.readdirSync(path.join(data, 'keys'))).toHaveLength(1);
    const added = await keepJson(['key', 'add', '--kdf-cost', '12'], { ...env(admin), KEEP_NEW_PASSWORD: 'second passphrase' });
    expect(fs.readdirSync(path.join(data, 'keys'))).toContain(`${added.added}.json`);
    // The agent opens with the new passphrase too.
    const list = await runKeep(['snapshots', '--json'], { ...env(agent), KEEP_PASSWORD: 'second passphrase' });
    expect(list.code, list.stderr).toBe(0);
  });
});
