/**
 * Plaintext grpc:// to a host that is not loopback would send the bearer
 * token in clear: keep and keepd (sync --from, serve --upstream) refuse it
 * before any name lookup or connection, unless --insecure / KEEP_INSECURE=1.
 * Loopback stays allowed. Every process runs with a preloaded guard that
 * records, and blocks, any lookup or connection to a non-loopback host, so
 * no traffic leaves this machine even when the refusal is lifted.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDirs } from './helpers.js';
import { keepdInit, runKeep, runKeepd } from './keepd-harness.js';

const HOST = 'backup.example.invalid';
const REMOTE = `grpc://${HOST}:7420`;

const GUARD = `
const fs = require('node:fs'), net = require('node:net'), dns = require('node:dns');
const local = (h) => h === undefined || h === 'localhost' || /^(127\\.|::1$|::ffff:127\\.)/.test(String(h));
const record = (what) => fs.appendFileSync(process.env.NET_GUARD_LOG, what + '\\n');
const connect = net.Socket.prototype.connect;
net.Socket.prototype.connect = function (...args) {
  const o = args[0];
  const host = Array.isArray(o) ? (o[0] && o[0].host) : typeof o === 'object' ? o.host : args[1];
  if (!(typeof o === 'object' && o && o.path) && !local(host)) { record('connect ' + host); throw new Error('blocked by the test guard'); }
  return connect.apply(this, args);
};
const lookup = dns.lookup;
dns.lookup = function (host, ...rest) {
  if (local(host)) return lookup.call(this, host, ...rest);
  record('lookup ' + host);
  const cb = rest[rest.length - 1];
  process.nextTick(cb, Object.assign(new Error('getaddrinfo ENOTFOUND ' + host + ' (blocked by the test guard)'), { code: 'ENOTFOUND' }));
};
// Every resolve* (grpc-js asks for TXT records too), callback and promise forms, on the module and on Resolvers.
const blocked = (host) => Object.assign(new Error('queryTxt ENOTFOUND ' + host + ' (blocked by the test guard)'), { code: 'ENOTFOUND' });
for (const target of [dns, dns.Resolver.prototype]) {
  for (const name of Object.keys(target).concat(Object.getOwnPropertyNames(target)).filter((n) => /^resolve/.test(n))) {
    const orig = target[name];
    if (typeof orig !== 'function') continue;
    target[name] = function (host, ...rest) {
      if (local(host)) return orig.call(this, host, ...rest);
      record(name + ' ' + host);
      process.nextTick(rest[rest.length - 1], blocked(host));
    };
  }
}
for (const target of [dns.promises, dns.promises.Resolver.prototype]) {
  for (const name of Object.keys(target).concat(Object.getOwnPropertyNames(target)).filter((n) => /^resolve/.test(n))) {
    const orig = target[name];
    if (typeof orig !== 'function') continue;
    target[name] = async function (host, ...rest) {
      if (local(host)) return orig.call(this, host, ...rest);
      record(name + ' ' + host);
      throw blocked(host);
    };
  }
}
const plookup = dns.promises.lookup;
dns.promises.lookup = async function (host, ...rest) {
  if (local(host)) return plookup.call(this, host, ...rest);
  record('lookup ' + host);
  throw Object.assign(new Error('getaddrinfo ENOTFOUND ' + host + ' (blocked by the test guard)'), { code: 'ENOTFOUND' });
};
`;

describe('plaintext grpc:// to a host that is not loopback', () => {
  const tmp = tempDirs();
  const dir = tmp.make('keep-plaintext-');
  const guard = path.join(dir, 'guard.cjs');
  fs.writeFileSync(guard, GUARD);
  const log = path.join(dir, 'net.log');
  const attempts = () => (fs.existsSync(log) ? fs.readFileSync(log, 'utf8').trim() : '');
  const guarded = (extra: Record<string, string> = {}) => ({ NODE_OPTIONS: `--require ${guard}`, NET_GUARD_LOG: log, ...extra });

  it('keep refuses it before any lookup or connection, unless --insecure or KEEP_INSECURE=1; loopback stays allowed', async () => {
    const env = guarded({ KEEP_REPO: REMOTE, KEEP_TOKEN: 'keep_0123456789abcdef_' + 'a'.repeat(43), KEEP_PASSWORD: 'p' });
    const r = await runKeep(['snapshots'], env);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr.trim()).toBe(`keep: error: refusing plaintext grpc:// to ${HOST}: the token would cross the network in clear; use grpcs:// with KEEP_CA, or pass --insecure (KEEP_INSECURE=1) to send it anyway`);
    expect(attempts(), 'no lookup or connection may happen before the refusal').toBe('');

    // An entry of a failover list is refused the same way.
    const list = await runKeep(['snapshots'], { ...env, KEEP_REPO: `${REMOTE},grpc://127.0.0.1:9` });
    expect(list.code, list.stderr).toBe(2);
    expect(list.stderr).toMatch(/refusing plaintext grpc:\/\//);
    expect(attempts()).toBe('');

    // Told to, keep does try (the guard blocks the lookup: nothing leaves the machine).
    for (const [args, extra] of [[['snapshots', '--insecure'], {}], [['snapshots'], { KEEP_INSECURE: '1' }]] as const) {
      const ok = await runKeep([...args], { ...env, ...extra });
      expect(ok.code, ok.stderr).toBe(1);
      expect(ok.stderr).toMatch(/cannot reach keepd/);
      expect(attempts()).toContain(HOST);
      fs.rmSync(log);
    }

    // Loopback by name and by address: no refusal (nothing listens on port 9, so the connection itself fails).
    for (const loop of ['grpc://localhost:9', 'grpc://127.0.0.2:9', 'grpc://[::1]:9']) {
      const l = await runKeep(['snapshots'], { ...env, KEEP_REPO: loop });
      expect(l.code, `${loop}: ${l.stderr}`).toBe(1);
      expect(l.stderr).toMatch(/cannot reach keepd/);
      expect(l.stderr).not.toMatch(/refusing/);
    }
    expect(attempts()).toBe('');
  }, 120_000);

  it('keepd sync --from and serve --upstream refuse it the same way', async () => {
    const data = path.join(dir, 'replica');
    const env = guarded({ KEEP_TOKEN: 'keep_0123456789abcdef_' + 'a'.repeat(43) });
    const sync = await runKeepd(['sync', '--data', data, '--from', REMOTE], { env });
    expect(sync.code, sync.stderr).toBe(2);
    expect(sync.stderr).toMatch(/^keepd: error: refusing plaintext grpc:\/\/ to backup\.example\.invalid: .*grpcs:\/\/ with KEEP_CA, or pass --insecure/);
    expect(attempts()).toBe('');

    await keepdInit(data);
    const serve = await runKeepd(['serve', '--data', data, '--listen', '127.0.0.1:0', '--upstream', REMOTE], { env, timeoutMs: 30_000 });
    expect(serve.code, serve.stderr).toBe(2);
    expect(serve.stderr).toMatch(/refusing plaintext grpc:\/\/ to backup\.example\.invalid/);
    expect(attempts()).toBe('');

    const insecure = await runKeepd(['sync', '--data', data, '--from', REMOTE, '--insecure'], { env });
    expect(insecure.code, insecure.stderr).not.toBe(0);
    expect(insecure.stderr).not.toMatch(/refusing/);
    expect(attempts()).toContain(HOST);
  }, 120_000);
});
