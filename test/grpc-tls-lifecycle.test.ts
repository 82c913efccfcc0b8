/**
 * keepd over TLS (keepd tls init, grpcs:// with KEEP_CA), and its life cycle:
 * SIGTERM drains and exits 0, /metrics serves Prometheus text, and no token
 * ever reaches keepd's log.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { compareTrees, restoredPath, tempDirs } from './helpers.js';
import { agentEnv, createToken, keepdInit, keepdJson, keepJson, killAllKeepd, runKeep, startKeepd, tokenSecret } from './keepd-harness.js';

function makeSource(root: string): void {
  fs.mkdirSync(path.join(root, 'sub'), { recursive: true });
  fs.writeFileSync(path.join(root, 'random.bin'), crypto.randomBytes(700 * 1024));
  fs.writeFileSync(path.join(root, 'sub', 'text.txt'), 'over TLS\n'.repeat(2000));
  fs.chmodSync(path.join(root, 'sub', 'text.txt'), 0o640);
  fs.symlinkSync('sub/text.txt', path.join(root, 'link'));
  fs.utimesSync(path.join(root, 'random.bin'), 1_600_000_000, 1_500_000_000.123);
}

describe('keepd over TLS', () => {
  const tmp = tempDirs();
  afterAll(killAllKeepd);

  it('grpcs:// with KEEP_CA backs up and restores; without the CA (or in plaintext) the connection is refused', async () => {
    const dir = tmp.make('keep-grpc-tls-');
    const data = path.join(dir, 'data');
    await keepdInit(data);
    const tls = await keepdJson(['tls', 'init', '--data', data]);
    for (const f of [tls.ca, tls.cert, tls.key]) expect(fs.existsSync(f), f).toBe(true);
    expect(fs.statSync(tls.key).mode & 0o077).toBe(0);
    const agent = await createToken(data, 'agent', { sources: ['tls'] });
    const keepd = await startKeepd(data, { tls: { cert: tls.cert, key: tls.key, host: 'localhost' } });
    expect(keepd.listening.tls).toBe(true);
    expect(keepd.url).toMatch(/^grpcs:\/\/localhost:\d+$/);

    const src = path.join(dir, 'src');
    makeSource(src);
    const env = agentEnv(keepd, agent.token, 'tls pass', { KEEP_CA: tls.ca });
    await keepJson(['init', '--kdf-cost', '12'], env);
    const b = await keepJson(['backup', src, '--source', 'tls'], env);
    expect(b.bytes_sent).toBeGreaterThan(700 * 1024);
    const target = path.join(dir, 'restore');
    const r = await runKeep(['restore', 'latest', '--source', 'tls', '--target', target], env);
    expect(r.code, r.stderr).toBe(0);
    expect(compareTrees(src, restoredPath(target, src))).toEqual([]);
    // 127.0.0.1 is in the certificate too.
    const byIp = await keepJson(['snapshots'], { ...env, KEEP_REPO: `grpcs://127.0.0.1:${keepd.port}` });
    expect(byIp.map((s: any) => s.id)).toEqual([b.snapshot]);

    // Without KEEP_CA the server's certificate is not trusted: a clear, one-line error, quickly.
    const started = Date.now();
    const untrusted = await runKeep(['snapshots'], { ...env, KEEP_CA: undefined });
    expect(untrusted.code).not.toBe(0);
    expect(untrusted.stderr.trim().split('\n')).toHaveLength(1);
    expect(untrusted.stderr).toMatch(/^keep: error: cannot reach keepd at localhost:\d+: .*(certificate|TLS|SSL|handshake)/i);
    expect(Date.now() - started).toBeLessThan(30_000);
    // Trusting another keepd's CA is no better.
    const other = await keepdJson(['tls', 'init', '--data', path.join(dir, 'other')]);
    const wrongCa = await runKeep(['snapshots'], { ...env, KEEP_CA: other.ca });
    expect(wrongCa.code).not.toBe(0);
    expect(wrongCa.stderr).toMatch(/^keep: error: /);
    // Plaintext gRPC to the TLS port fails as well.
    const plain = await runKeep(['snapshots'], { ...env, KEEP_REPO: `grpc://127.0.0.1:${keepd.port}` });
    expect(plain.code).not.toBe(0);
    expect(plain.stderr).toMatch(/^keep: error: /);

    expect(await keepd.stop()).toEqual({ code: 0, signal: null });
  });
});

describe('keepd life cycle: metrics, logs, SIGTERM', () => {
  const tmp = tempDirs();
  afterAll(killAllKeepd);

  it('serves Prometheus metrics, never logs a token, and exits 0 on SIGTERM', async () => {
    const dir = tmp.make('keep-grpc-life-');
    const data = path.join(dir, 'data');
    await keepdInit(data);
    const agent = await createToken(data, 'agent', { sources: ['life'] });
    const admin = await createToken(data, 'admin');
    // Debug level: every RPC is logged, so a leak would show.
    const keepd = await startKeepd(data, { metrics: true, env: { KEEP_LOG_LEVEL: 'debug' } });
    expect(keepd.metricsPort).toBeGreaterThan(0);
    const src = path.join(dir, 'src');
    makeSource(src);
    const env = agentEnv(keepd, agent.token);
    await keepJson(['init', '--kdf-cost', '12'], env);
    await keepJson(['backup', src, '--source', 'life'], env);
    await keepJson(['snapshots'], env);
    expect((await runKeep(['restore', 'latest', '--source', 'life', '--target', path.join(dir, 'restore')], env)).code).toBe(0);
    expect((await keepJson(['check'], agentEnv(keepd, admin.token))).ok).toBe(true);
    // Failures are logged too: a refused call and an unknown token (a forged secret for a real id).
    expect((await runKeep(['snapshots', '--source', 'other'], env)).code).not.toBe(0);
    const forged = `keep_${agent.id}_${crypto.randomBytes(32).toString('base64url')}`;
    expect((await runKeep(['snapshots'], agentEnv(keepd, forged))).code).not.toBe(0);

    const res = await fetch(`http://127.0.0.1:${keepd.metricsPort}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
    const text = await res.text();
    expect(text).toMatch(/^# TYPE keep_rpc_requests_total counter$/m);
    const count = (method: string, code: string) => {
      const m = new RegExp(`^keep_rpc_requests_total\\{method="${method}",code="${code}"\\} (\\d+)$`, 'm').exec(text);
      return m ? Number(m[1]) : 0;
    };
    expect(count('GetConfig', 'OK')).toBeGreaterThanOrEqual(5);
    expect(count('Commit', 'OK')).toBe(1);
    expect(count('ListSnapshots', 'PERMISSION_DENIED')).toBe(1);
    expect(count('GetConfig', 'UNAUTHENTICATED')).toBeGreaterThanOrEqual(1);
    expect(text).toMatch(/^keep_snapshots 1$/m);
    // Every sample line is Prometheus text: name{labels} value.
    for (const l of text.split('\n').filter((x) => x && !x.startsWith('#'))) expect(l).toMatch(/^[a-z_]+(\{[^}]*\})? (-?\d+(\.\d+)?(e[+-]?\d+)?|[+-]Inf|NaN)$/);
    expect((await fetch(`http://127.0.0.1:${keepd.metricsPort}/other`)).status).toBe(404);

    expect(await keepd.stop('SIGTERM')).toEqual({ code: 0, signal: null });
    const log = keepd.output();
    const lines = log.split('\n').filter(Boolean);
    // pino JSON lines: listening first, stopped last; the RPCs were logged.
    expect(JSON.parse(lines[0]).msg).toBe('listening');
    expect(JSON.parse(lines[lines.length - 1]).msg).toBe('stopped');
    expect(lines.length).toBeGreaterThan(10);
    for (const t of [agent, admin]) {
      expect(log).not.toContain(t.token);
      expect(log).not.toContain(tokenSecret(t.token));
    }
    expect(log).not.toContain(tokenSecret(forged));
    expect(log).not.toMatch(/Bearer/i);
  });
});
