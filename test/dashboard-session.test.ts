/**
 * The dashboard's sessions under TLS, with keepd (the same serve() as
 * `keepd serve --http`) in this process on a clock the test moves: the login
 * cookie is HttpOnly, SameSite=Strict and Secure with its lifetime; a session
 * ends when it expires and when its token is revoked (from another process);
 * nothing answers without one.
 */
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { ManualClock } from '@keep/core';
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

  beforeAll(async () => {
    await keepdInit(data);
    const tls = await keepdJson(['tls', 'init', '--data', data, '--json']);
    ca = fs.readFileSync(tls.ca);
    viewer = await createToken(data, 'viewer');
    server = await serve({ data, listen: '127.0.0.1:0', http: '127.0.0.1:0', tlsCert: tls.cert, tlsKey: tls.key, clock, log: createLogger('warn') });
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

  it('revoking the token ends its sessions', async () => {
    const { cookie } = await login(viewer.token);
    expect((await request('GET', '/alerts', { cookie })).status).toBe(200);
    const r = await runKeepd(['token', 'revoke', viewer.id, '--data', data]);
    expect(r.code).toBe(0);
    expect((await request('GET', '/alerts', { cookie })).status).toBe(303);
    expect((await request('POST', '/login', { form: new URLSearchParams({ token: viewer.token }).toString() })).status).toBe(401);
  });
});
