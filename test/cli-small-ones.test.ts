/**
 * Issue 15's small ones, through the real binaries: keepd's errors name
 * `keepd init`, a port in use is one clear line (exit 1), grpcs:// to an IP
 * address prints no DEP0123 warning, and under --json an error is one
 * restic-shaped JSON object on stderr.
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { initRepo, tempDirs } from './helpers.js';
import { agentEnv, createToken, keepdInit, keepdJson, keepJson, killAllKeepd, runKeep, runKeepd, startKeepd } from './keepd-harness.js';

const tmp = tempDirs();
afterAll(killAllKeepd);

/** A port some other process holds (a plain TCP listener here). */
async function busyPort(): Promise<{ port: number; close(): void }> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as net.AddressInfo).port, close: () => server.close() };
}

describe('keepd: a missing data directory names keepd init', () => {
  it.each([['serve'], ['check'], ['status'], ['prune'], ['token', 'list'], ['token', 'create', '--role', 'admin'], ['forget', '--keep-last', '1'], ['rebuild-index']])(
    'keepd %s --data /missing',
    async (...argv) => {
      const missing = path.join(tmp.make('keepd-missing-'), 'nothing-here');
      const r = await runKeepd([...argv, '--data', missing]);
      expect(r.code, r.stderr).toBe(10);
      expect(r.stderr).toBe(`keepd: error: ${missing} is not a Keep repository (no config.json); run \`keepd init --data ${missing}\` first\n`);
      expect(fs.existsSync(missing)).toBe(false);
    },
  );
});

describe('keepd serve: a port in use', () => {
  it.each([['--listen'], ['--metrics']])('%s on a port in use: one error line, exit 1', async (flag) => {
    const data = path.join(tmp.make('keepd-busy-'), 'data');
    await keepdInit(data);
    const busy = await busyPort();
    try {
      const args = flag === '--listen' ? ['--listen', `127.0.0.1:${busy.port}`] : ['--listen', '127.0.0.1:0', '--metrics', `127.0.0.1:${busy.port}`];
      const r = await runKeepd(['serve', '--data', data, ...args], { timeoutMs: 20_000 });
      expect(r.code, r.stdout + r.stderr).toBe(1);
      expect(r.stderr).toBe(`keepd: error: cannot listen for ${flag} on 127.0.0.1:${busy.port}: address already in use\n`);
    } finally {
      busy.close();
    }
  });
});

describe('grpcs:// to an IP address', () => {
  it('connects, verifies the certificate against the IP, and prints no DEP0123 warning', async () => {
    const dir = tmp.make('keep-dep0123-');
    const data = path.join(dir, 'data');
    await keepdInit(data);
    const tls = await keepdJson(['tls', 'init', '--data', data]);
    const agent = await createToken(data, 'agent', { sources: ['ip'] });
    const keepd = await startKeepd(data, { tls: { cert: tls.cert, key: tls.key, host: '127.0.0.1' } });
    expect(keepd.url).toMatch(/^grpcs:\/\/127\.0\.0\.1:/);
    const env = agentEnv(keepd, agent.token, 'ip pass', { KEEP_CA: tls.ca });
    await keepJson(['init', '--kdf-cost', '12'], env);
    const r = await runKeep(['snapshots', '--json'], env);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual([]);
    expect(r.stderr).not.toMatch(/DEP0123|DeprecationWarning/);
    // Trusting another CA still fails: the name left out of the handshake is not a check left out.
    const other = await keepdJson(['tls', 'init', '--data', path.join(dir, 'other')]);
    const untrusted = await runKeep(['snapshots'], { ...env, KEEP_CA: other.ca });
    expect(untrusted.code).not.toBe(0);
    expect(untrusted.stderr).not.toMatch(/DEP0123/);
  });
});

describe('errors under --json', () => {
  it('keep: one exit_error object on stderr, nothing on stdout', async () => {
    const { env } = await initRepo(tmp.make('keep-json-err-'));
    const wrong = await runKeep(['snapshots', '--json'], { ...env, KEEP_PASSWORD: 'not it' });
    expect(wrong.code).toBe(12);
    expect(wrong.stdout).toBe('');
    expect(wrong.stderr.endsWith('\n')).toBe(true);
    expect(JSON.parse(wrong.stderr)).toEqual({ message_type: 'exit_error', code: 12, message: expect.stringMatching(/^wrong passphrase/) });
    const usage = await runKeep(['backup', '--json', '--no-such-flag'], env);
    expect(usage.code).toBe(2);
    expect(JSON.parse(usage.stderr)).toMatchObject({ message_type: 'exit_error', code: 2, message: expect.stringMatching(/--no-such-flag/) });
    // Without --json: the text line, as before.
    const text = await runKeep(['snapshots'], { ...env, KEEP_PASSWORD: 'not it' });
    expect(text.stderr).toMatch(/^keep: error: wrong passphrase/);
  });

  it('keepd: one exit_error object on stderr', async () => {
    const missing = path.join(tmp.make('keepd-json-err-'), 'none');
    const r = await runKeepd(['status', '--data', missing, '--json']);
    expect(r.code).toBe(10);
    expect(r.stdout).toBe('');
    expect(JSON.parse(r.stderr)).toEqual({ message_type: 'exit_error', code: 10, message: expect.stringContaining('keepd init') });
    const unknown = await runKeepd(['frobnicate', '--json']);
    expect(unknown.code).toBe(2);
    expect(JSON.parse(unknown.stderr)).toMatchObject({ message_type: 'exit_error', code: 2 });
  });
});
