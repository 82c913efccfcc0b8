import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readTrailer } from '@keep/core';
import { summaryLine } from './helpers.js';

const run = promisify(execFile);
const bin = (name: string) => path.resolve(__dirname, '..', 'node_modules', '.bin', name);

async function cli(name: 'keep' | 'keepd', args: string[], env: NodeJS.ProcessEnv = {}) {
  try {
    const { stdout, stderr } = await run(bin(name), args, { env: { ...process.env, KEEP_NO_PROGRESS: '1', ...env }, maxBuffer: 64 << 20 });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

function packFiles(repo: string): string[] {
  const packs = path.join(repo, 'packs');
  return fs.readdirSync(packs).flatMap((d) => fs.readdirSync(path.join(packs, d)).map((f) => path.join(packs, d, f)));
}

/** keepd's keyless commands on a data directory written by a real `keep backup`. */
describe('keepd check, status and rebuild-index (no key)', () => {
  let dir: string;
  let repo: string;
  let env: NodeJS.ProcessEnv;
  let snapshot: string;

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'keepd-cli-'));
    repo = path.join(dir, 'repo');
    const src = path.join(dir, 'src');
    fs.mkdirSync(src);
    fs.writeFileSync(path.join(src, 'a.bin'), Buffer.alloc(3 << 20, 7).map((_, i) => (i * 2654435761) >>> 24));
    fs.writeFileSync(path.join(src, 'b.txt'), 'hello keepd\n'.repeat(1000));
    env = { KEEP_REPO: repo, KEEP_PASSWORD: 'pw' };
    expect((await cli('keep', ['init', '--kdf-cost', '12'], env)).code).toBe(0);
    const b = await cli('keep', ['backup', src, '--source', 'files', '--tier', 'high', '--json'], env);
    expect(b.code).toBe(0);
    snapshot = summaryLine(b).snapshot;
  });

  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('status reports each source with its newest snapshot and RPO state', async () => {
    const r = await cli('keepd', ['status', '--data', repo, '--json']);
    expect(r.code).toBe(0);
    const s = JSON.parse(r.stdout);
    expect(s.snapshots).toBe(1);
    expect(s.sources).toHaveLength(1);
    expect(s.sources[0]).toMatchObject({ source: 'files', last_snapshot: snapshot, tier: 'high', rpo_s: 300, rpo_state: 'ok' });
  });

  it('check passes on a healthy repository and reads every blob with --read-data', async () => {
    const r = await cli('keepd', ['check', '--data', repo, '--read-data', '--json']);
    expect(r.code).toBe(0);
    const c = JSON.parse(r.stdout);
    expect(c.ok).toBe(true);
    expect(c.blobs).toBeGreaterThan(2);
    expect(c.blobs_read).toBe(c.blobs);
  });

  it('rebuilds a lost index from the packs alone, and the snapshot still restores', async () => {
    fs.rmSync(path.join(repo, 'index.mdb'));
    fs.rmSync(path.join(repo, 'index.mdb-lock'), { force: true });
    const rb = await cli('keepd', ['rebuild-index', '--data', repo, '--json']);
    expect(rb.code).toBe(0);
    expect(JSON.parse(rb.stdout).blobs).toBeGreaterThan(2);
    const snaps = JSON.parse((await cli('keep', ['snapshots', '--json'], env)).stdout);
    expect(snaps.map((s: { id: string }) => s.id)).toEqual([snapshot]);
    const target = path.join(dir, 'restored');
    expect((await cli('keep', ['restore', 'latest', '--target', target], env)).code).toBe(0);
    expect(fs.readFileSync(path.join(target, dir, 'src', 'b.txt'), 'utf8')).toBe('hello keepd\n'.repeat(1000));
  });

  it('check names a blob whose bytes were damaged, without a key', async () => {
    const pack = packFiles(repo).sort((a, b) => fs.statSync(b).size - fs.statSync(a).size)[0];
    // a byte inside a data blob (a damaged tree would also make its snapshot unreadable: a second problem)
    const data = (await readTrailer(pack)).find((e) => e.type === 0)!; // 0: data (BlobType.Data, a const enum)
    const at = data.offset + Math.floor(data.length / 2);
    const fd = fs.openSync(pack, 'r+');
    const b = Buffer.alloc(1);
    fs.readSync(fd, b, 0, 1, at);
    b[0] ^= 0xff;
    fs.writeSync(fd, b, 0, 1, at);
    fs.closeSync(fd);
    const r = await cli('keepd', ['check', '--data', repo, '--read-data', '--json']);
    expect(r.code).toBe(4);
    const c = JSON.parse(r.stdout);
    expect(c.ok).toBe(false);
    expect(c.damaged_blobs).toHaveLength(1);
    expect(c.damaged_blobs[0]).toMatch(/^[0-9a-f]{64}$/);
    expect(JSON.parse(r.stderr)).toMatchObject({ message_type: 'exit_error', code: 4, message: expect.stringMatching(/^check found 1 problem/) });
    b[0] ^= 0xff;
    const fd2 = fs.openSync(pack, 'r+');
    fs.writeSync(fd2, b, 0, 1, at);
    fs.closeSync(fd2);
  });

  it('check reports a truncated pack and exits non-zero', async () => {
    const pack = packFiles(repo)[0];
    fs.truncateSync(pack, Math.floor(fs.statSync(pack).size / 2));
    const r = await cli('keepd', ['check', '--data', repo, '--json']);
    expect(r.code).toBe(4);
    const c = JSON.parse(r.stdout);
    expect(c.errors.join('\n')).toMatch(/truncated/);
  });

  it('refuses a directory that is not a repository with a clear error', async () => {
    const r = await cli('keepd', ['status', '--data', dir]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/not a Keep repository/);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });
});
