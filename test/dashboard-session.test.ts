/**
 * The dashboard's sessions under TLS, with keepd (the same serve() as
 * `keepd serve --http`) in this process on a clock the test moves: the login
 * cookie is HttpOnly, SameSite=Strict and Secure with its lifetime; a session
 * ends when it expires and when its token is revoked (from another process);
 * nothing answers without one. Sessions live in state.mdb (only the cookie's
 * hash): a keepd restart keeps them; logout and revocation delete the record.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { ManualClock, Repository, STATE_TABLES } from '@keep/core';
import { createLogger } from '@keep/server/dist/log.js';
import { serve } from '@keep/server/dist/serve.js';
import { WEB_SESSION_MS } from '@keep/server/dist/web/web-sessions.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDirs } from './helpers.js';
import { createToken, keepdInit, keepdJson, runKeepd } from './keepd-harness.js';

const tmp = tempDirs();

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

describe('dashboard sessions over HTTPS', () => {
  const dir = tmp.make('keep-dashboard-session-');
  const data = path.join(dir, 'data');
  const clock = new ManualClock(Date.now());
  let server: Awaited<ReturnType<typeof serve>>;
  let ca: Buffer;
  let viewer: { token: string; id: string };

  const request = (method: string, p: string, o: { cookie?: string; form?: string; origin?: string } = {}) =>
    new Promise<Answer>((resolve, reject) => {
      const req = https.request({ host: '127.0.0.1', port: server.httpPort, path: p, method, ca, servername: 'localhost', headers: { ...(o.cookie ? { cookie: o.cookie } : {}), ...(o.origin ? { origin: o.origin } : {}), ...(o.form ? { 'content-type': 'application/x-www-form-urlencoded' } : {}) } }, (res) => {
        const parts: Buffer[] = [];
        res.on('data', (b: Buffer) => parts.push(b));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(parts).toString() }));
      });
      req.on('error', reject);
      req.end(o.form);
    });

  /** POST /login; the session cookie's "name=value" and the whole Set-Cookie line. */
  async function login(token: string): Promise<{ cookie: string; line: string }> {
    const r = await request('POST', '/login', { form: new URLSearchParams({ token }).toString() });
    expect(r.status).toBe(303);
    const line = (r.headers['set-cookie'] as string[])[0];
    return { cookie: line.split(';')[0], line };
  }

  let tls: { cert: string; key: string; ca: string };
  const start = async () => {
    server = await serve({ data, listen: '127.0.0.1:0', http: '127.0.0.1:0', tlsCert: tls.cert, tlsKey: tls.key, clock, log: createLogger('warn') });
  };

  /** Stop keepd, read the stored sessions' keys from state.mdb as it left it, start keepd again on the same data. */
  async function storedSessionKeys(): Promise<string[]> {
    await server.shutdown();
    const repo = await Repository.open(data);
    try {
      return [...repo.database(STATE_TABLES.dashboardSessions).getKeys()].map(String);
    } finally {
      await repo.close();
      await start();
    }
  }
  const keyOf = (cookie: string) => crypto.createHash('sha256').update(cookie.split('=')[1]).digest('hex');

  beforeAll(async () => {
    await keepdInit(data);
    tls = await keepdJson(['tls', 'init', '--data', data, '--json']);
    ca = fs.readFileSync(tls.ca);
    viewer = await createToken(data, 'viewer');
    await start();
  });

  afterAll(async () => {
    await server?.shutdown();
  });

  it('sets a Secure, HttpOnly, SameSite=Strict cookie that expires with the session', async () => {
    expect((await request('GET', '/')).status).toBe(303);
    expect((await request('GET', '/api/status')).status).toBe(401);
    // a login form posted from another site is refused, even with a good token
    const form = new URLSearchParams({ token: viewer.token }).toString();
    const crossSite = await request('POST', '/login', { form, origin: 'https://elsewhere.example' });
    expect(crossSite.status).toBe(403);
    expect(crossSite.headers['set-cookie']).toBeUndefined();
    expect((await request('POST', '/login', { form, origin: `https://127.0.0.1:${server.httpPort}` })).status).toBe(303);
    const { cookie, line } = await login(viewer.token);
    expect(line).toMatch(/; HttpOnly/);
    expect(line).toMatch(/; SameSite=Strict/);
    expect(line).toMatch(/; Secure/);
    expect(line).toContain(`Max-Age=${WEB_SESSION_MS / 1000}`);
    expect(line).not.toContain(viewer.token);
    const page = await request('GET', '/', { cookie });
    expect(page.status).toBe(200);
    expect(page.headers['content-security-policy']).toContain("script-src 'self'");
    expect((await request('GET', '/api/status', { cookie })).status).toBe(200);
    // one second short of the lifetime it still answers; past it, the login form again
    clock.advance(WEB_SESSION_MS - 1000);
    expect((await request('GET', '/storage', { cookie })).status).toBe(200);
    clock.advance(2000);
    const after = await request('GET', '/storage', { cookie });
    expect(after.status).toBe(303);
    expect(after.headers.location).toBe('/login');
    expect((await request('GET', '/api/status', { cookie })).status).toBe(401);
  });

  it('refuses a plaintext dashboard off loopback (tokens would cross the network in clear)', async () => {
    const r = await runKeepd(['serve', '--data', data, '--listen', '127.0.0.1:0', '--http', '0.0.0.0:0']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('refusing a plaintext dashboard on 0.0.0.0:0');
  });

  it('a session survives a keepd restart (stored as its hash only); logout deletes its record', async () => {
    const { cookie } = await login(viewer.token);
    const before = await storedSessionKeys(); // keepd restarted on the same --data
    expect(before).toContain(keyOf(cookie));
    expect(before.join()).not.toContain(cookie.split('=')[1]);
    const page = await request('GET', '/', { cookie });
    expect(page.status).toBe(200);
    const csrf = /name="csrf" value="([^"]+)"/.exec(page.body)![1];
    const out = await request('POST', '/logout', { cookie, form: new URLSearchParams({ csrf }).toString() });
    expect(out.status).toBe(303);
    expect((await request('GET', '/api/status', { cookie })).status).toBe(401);
    expect(await storedSessionKeys()).not.toContain(keyOf(cookie));
    expect((await request('GET', '/api/status', { cookie })).status).toBe(401);
  });

  it('revoking the token ends its sessions, across a restart too, and deletes their records', async () => {
    const { cookie } = await login(viewer.token);
    const other = (await login(viewer.token)).cookie;
    expect((await request('GET', '/alerts', { cookie })).status).toBe(200);
    const r = await runKeepd(['token', 'revoke', viewer.id, '--data', data]);
    expect(r.code).toBe(0);
    expect((await request('GET', '/alerts', { cookie })).status).toBe(303);
    // the other session, never used since, is still stored; keepd's next start sweeps it
    const before = await storedSessionKeys();
    expect(before).not.toContain(keyOf(cookie));
    expect(before).toContain(keyOf(other));
    expect(await storedSessionKeys()).not.toContain(keyOf(other));
    expect((await request('GET', '/alerts', { cookie: other })).status).toBe(303);
    expect((await request('POST', '/login', { form: new URLSearchParams({ token: viewer.token }).toString() })).status).toBe(401);
  });
});
