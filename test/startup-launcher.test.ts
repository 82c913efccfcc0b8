/**
 * agent/bin/keep.js started by /bin/sh (its first line; how a package manager's
 * shim or the kernel runs it): arguments arrive intact, and NODE_EXTRA_CA_CERTS,
 * which the launcher keeps from Node's start-up, still makes grpcs:// trust
 * the CAs it names.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT, tempDirs } from './helpers.js';
import { createToken, keepdInit, keepdJson, killAllKeepd, startKeepd } from './keepd-harness.js';

const KEEP_JS = path.join(ROOT, 'agent/bin/keep.js');

/** Run keep.js through `launcher` with exactly the environment given (plus PATH and HOME). */
function run(launcher: string[], args: string[], env: Record<string, string | undefined>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const full: Record<string, string> = { PATH: process.env.PATH!, HOME: process.env.HOME!, KEEP_NO_PROGRESS: '1' };
  for (const [k, v] of Object.entries(env)) if (v !== undefined) full[k] = v;
  return new Promise((resolve, reject) => {
    const child = spawn(launcher[0], [...launcher.slice(1), KEEP_JS, ...args], { env: full, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b));
    child.stderr.on('data', (b: Buffer) => (stderr += b));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const SH = ['/bin/sh'];
const NODE = [process.execPath, '--max-semi-space-size=1'];

describe('keep.js launched by /bin/sh', () => {
  const tmp = tempDirs();
  afterAll(killAllKeepd);

  it('passes its arguments through unchanged', async () => {
    const dir = tmp.make('keep-launcher-');
    const repo = path.join(dir, 'repo');
    const env = { KEEP_REPO: repo, KEEP_PASSWORD: 'launcher pass', KEEP_CACHE_DIR: path.join(dir, 'cache') };
    const init = await run(SH, ['init', '--kdf-cost', '12'], env);
    expect(init.code, init.stderr).toBe(0);
    const src = path.join(dir, 'a dir with  spaces');
    fs.mkdirSync(src);
    fs.writeFileSync(path.join(src, "it's $HOME"), 'x');
    const b = await run(SH, ['backup', src, '--tag', 'two words', '--json'], env);
    expect(b.code, b.stderr).toBe(0);
    const s = await run(SH, ['snapshots', '--json'], env);
    expect(JSON.parse(s.stdout)[0].tags).toEqual(['two words']);
    const ls = await run(SH, ['ls', 'latest', '--json'], env);
    expect(ls.stdout).toContain(JSON.stringify(path.join(src, "it's $HOME")).slice(1, -1));
  });

  it('grpcs:// trusts the CAs of NODE_EXTRA_CA_CERTS, however keep.js is started', async () => {
    const dir = tmp.make('keep-launcher-tls-');
    const data = path.join(dir, 'data');
    await keepdInit(data);
    const tls = await keepdJson(['tls', 'init', '--data', data]);
    const agent = await createToken(data, 'agent', { sources: ['tls'] });
    const keepd = await startKeepd(data, { tls: { cert: tls.cert, key: tls.key, host: 'localhost' } });
    // No KEEP_CA, and no GRPC_DEFAULT_SSL_ROOTS_FILE_PATH (grpc-js would prefer it to Node's CAs).
    const env = { KEEP_REPO: keepd.url, KEEP_TOKEN: agent.token, KEEP_PASSWORD: 'tls pass', KEEP_CACHE_DIR: path.join(dir, 'cache'), NODE_EXTRA_CA_CERTS: tls.ca };
    const init = await run(SH, ['init', '--kdf-cost', '12'], env);
    expect(init.code, init.stderr).toBe(0);
    for (const launcher of [SH, NODE]) {
      const r = await run(launcher, ['snapshots', '--json'], env);
      expect(r.code, `${launcher[0]}: ${r.stderr}`).toBe(0);
      expect(JSON.parse(r.stdout)).toEqual([]);
    }
    // Without it the certificate is not trusted.
    const untrusted = await run(SH, ['snapshots'], { ...env, NODE_EXTRA_CA_CERTS: undefined });
    expect(untrusted.code).not.toBe(0);
    expect(untrusted.stderr).toMatch(/^keep: error: cannot reach keepd/);
    expect(await keepd.stop()).toEqual({ code: 0, signal: null });
  });
});
