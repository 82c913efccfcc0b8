import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { insecureFromEnv, isLoopbackHost, KeepError } from '@keep/core';
import { audit } from '../audit/log.js';
import { parseSince } from '../audit/list.js';
import type { TokenStore } from '../auth/tokens.js';
import type { Logger } from '../log.js';
import { listenError, splitHostPort } from '../net/host-port.js';
import { DASHBOARD_SCRIPT } from './client-script.js';
import { alertFigures, auditFigures, FigureDeps, fleet, maintenanceFigures, replicaFigures, sourceFigures, storageFigures } from './figures.js';
import { CONTENT_SECURITY_POLICY, loginPage, shell } from './layout.js';
import { alertsPage, auditPage, fleetPage, maintenancePage, replicasPage, sourcePage, storagePage } from './pages.js';
import { chartLibrary } from './vendor-assets.js';
import { csrfMatches, WebSessions } from './web-sessions.js';

export interface DashboardOptions extends FigureDeps {
  /** HOST:PORT (keepd serve --http); port 0 picks a free one */
  listen: string;
  tlsCert?: string;
  tlsKey?: string;
  tokens: TokenStore;
  log: Logger;
  /** dashboard session lifetime (tests shorten it) */
  sessionMs?: number;
}

const COOKIE = 'keep_session';
/** a login form or a logout: nothing bigger is ever posted */
const MAX_BODY = 4096;

type Page = { title: string; body: string } | undefined;

/**
 * Plain HTTP carries the login's token and the session cookie in clear:
 * loopback only, unless TLS is served or the operator says --insecure.
 * Checked before keepd starts anything.
 */
export function requireSafeDashboard(listen: string, tls: boolean): void {
  const { host } = splitHostPort(listen, '--http');
  if (tls || isLoopbackHost(host) || insecureFromEnv()) return;
  throw new KeepError('INVALID_ARGUMENT', `refusing a plaintext dashboard on ${listen}: sign-in tokens and session cookies would cross the network in clear; serve TLS (--tls-cert/--tls-key), listen on loopback, or pass --insecure (KEEP_INSECURE=1)`);
}

/**
 * keepd's operators' dashboard over HTTP(S): a login form (admin or viewer
 * token), then server-rendered pages whose live region the page's script
 * refreshes by polling the same URL for JSON. Every page, asset and endpoint
 * but the login form needs a session cookie; logins are audited; tokens
 * travel only in a POST body and are never logged.
 */
export async function listenDashboard(o: DashboardOptions): Promise<{ server: http.Server; port: number }> {
  const { host, port } = splitHostPort(o.listen, '--http');
  const tls = o.tlsCert !== undefined && o.tlsKey !== undefined;
  const sessions = new WebSessions(o.repo, o.clock, (id) => o.tokens.isRevoked(id), o.sessionMs);
  await sessions.sweep();
  const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
    handle(o, sessions, tls, req, res).catch((e: unknown) => {
      o.log.warn({ path: pathOf(req), err: (e as Error).message }, 'dashboard request failed');
      if (!res.headersSent) send(res, e instanceof KeepError && e.code === 'INVALID_ARGUMENT' ? 400 : 500, 'text/plain', e instanceof KeepError ? e.message : 'internal error');
      else res.destroy();
    });
  };
  const server = tls ? https.createServer({ cert: fs.readFileSync(o.tlsCert!), key: fs.readFileSync(o.tlsKey!) }, handler) : http.createServer(handler);
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => reject(listenError('--http', o.listen, err)));
    server.listen(port, host, resolve);
  });
  return { server, port: (server.address() as { port: number }).port };
}

/** The path alone: a query string may hold filter values, never logged. */
const pathOf = (req: http.IncomingMessage) => (req.url ?? '/').split('?')[0];

function send(res: http.ServerResponse, status: number, type: string, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, {
    'content-type': `${type}; charset=utf-8`,
    'cache-control': 'no-store',
    'content-security-policy': CONTENT_SECURITY_POLICY,
    'x-content-type-options': 'nosniff',
    // not no-referrer: under it Chromium sends "Origin: null" with our own forms (sameOrigin refuses that)
    'referrer-policy': 'same-origin',
    ...headers,
  });
  res.end(body);
}

const redirect = (res: http.ServerResponse, to: string, headers: Record<string, string> = {}) => send(res, 303, 'text/plain', '', { location: to, ...headers });

function cookieOf(req: http.IncomingMessage): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === COOKIE) return v.join('=');
  }
  return undefined;
}

function readForm(req: http.IncomingMessage): Promise<URLSearchParams> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let size = 0;
    req.on('data', (b: Buffer) => {
      size += b.length;
      if (size > MAX_BODY) {
        reject(new KeepError('INVALID_ARGUMENT', 'form too large'));
        req.destroy();
      } else parts.push(b);
    });
    req.on('end', () => resolve(new URLSearchParams(Buffer.concat(parts).toString('utf8'))));
    req.on('error', reject);
  });
}

/** A browser sends Origin with every POST; it must name this server as the browser reached it. */
function sameOrigin(req: http.IncomingMessage): boolean {
  const origin = req.headers.origin;
  if (origin === undefined) return true;
  try {
    return new URL(origin).host === req.headers.host;
  } catch {
    return false;
  }
}

const peerOf = (req: http.IncomingMessage) => req.socket.remoteAddress?.replace(/^::ffff:/, '') ?? 'unknown';

async function handle(o: DashboardOptions, sessions: WebSessions, tls: boolean, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://dashboard');
  const path = url.pathname;
  if (path === '/login' && req.method === 'GET') return send(res, 200, 'text/html', loginPage());
  // a form another site posts here (a login into the attacker's session, a logout) carries its Origin: refused
  if (req.method === 'POST' && !sameOrigin(req)) return send(res, 403, 'text/plain', 'cross-site request refused');
  if (path === '/login' && req.method === 'POST') return login(o, sessions, tls, req, res);

  const id = cookieOf(req);
  // expired, or its token revoked since (`keepd token revoke` is another process): ended, its record gone
  const session = await sessions.get(id);
  if (!session) {
    if (req.method === 'GET' && req.headers['x-keep-live'] === undefined && !path.startsWith('/api/') && !path.startsWith('/assets/')) return redirect(res, '/login');
    return send(res, 401, 'application/json', JSON.stringify({ error: 'sign in first' }));
  }
  if (req.method === 'POST' && path === '/logout') {
    const form = await readForm(req);
    if (!csrfMatches(session, form.get('csrf') ?? undefined)) return send(res, 403, 'text/plain', 'bad or missing CSRF token');
    await sessions.close(id!);
    await audit(o.repo).record('dashboard.logout', { tokenId: session.tokenId, peer: peerOf(req) }, { role: session.role });
    return redirect(res, '/login', { 'set-cookie': cookie('', 0, tls) });
  }
  if (req.method !== 'GET') return send(res, 405, 'text/plain', 'method not allowed');

  if (path === '/assets/dashboard.js') return send(res, 200, 'text/javascript', DASHBOARD_SCRIPT);
  if (path === '/assets/uplot.js') return send(res, 200, 'text/javascript', chartLibrary().js);
  if (path === '/assets/uplot.css') return send(res, 200, 'text/css', chartLibrary().css);
  if (path === '/api/status') return send(res, 200, 'application/json', JSON.stringify(fleet(o).status));

  const page = render(o, path, url.searchParams);
  if (!page) return send(res, 404, 'text/plain', 'no such page');
  if (req.headers['x-keep-live'] !== undefined) return send(res, 200, 'application/json', JSON.stringify({ html: page.body, generated_at: new Date(o.clock.now()).toISOString() }));
  return send(res, 200, 'text/html', shell({ title: page.title, path, csrf: session.csrf, role: session.role, body: page.body }));
}

function render(o: DashboardOptions, path: string, q: URLSearchParams): Page {
  if (path === '/') return { title: 'Fleet', body: fleetPage(fleet(o)) };
  if (path.startsWith('/sources/')) {
    const f = sourceFigures(o, decodeURIComponent(path.slice('/sources/'.length)));
    return f && { title: `Source ${f.source.source}`, body: sourcePage(f) };
  }
  if (path === '/replicas') return { title: 'Replicas', body: replicasPage(replicaFigures(o)) };
  if (path === '/storage') return { title: 'Storage', body: storagePage(storageFigures(o)) };
  if (path === '/alerts') return { title: 'Alerts', body: alertsPage(alertFigures(o)) };
  if (path === '/maintenance') return { title: 'Maintenance', body: maintenancePage(maintenanceFigures(o)) };
  if (path === '/audit') {
    const filter = { source: q.get('source') || undefined, event: q.get('event') || undefined, since: q.get('since') || undefined };
    const f = auditFigures(o, { source: filter.source, event: filter.event, since: filter.since ? parseSince(filter.since, o.clock) : undefined });
    return { title: 'Audit log', body: auditPage(f, filter) };
  }
  return undefined;
}

function cookie(value: string, maxAgeS: number, tls: boolean): string {
  return `${COOKIE}=${value}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${maxAgeS}${tls ? '; Secure' : ''}`;
}

/** POST /login: an admin or viewer token in the form body opens a session; every attempt is audited. */
async function login(o: DashboardOptions, sessions: WebSessions, tls: boolean, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  const form = await readForm(req);
  const peer = peerOf(req);
  let principal;
  try {
    principal = o.tokens.authenticate(form.get('token')?.trim() || undefined);
  } catch {
    await audit(o.repo).record('dashboard.login_refused', { peer }, { reason: 'unknown or revoked token' });
    return send(res, 401, 'text/html', loginPage('Unknown or revoked token.'));
  }
  if (principal.role !== 'admin' && principal.role !== 'viewer') {
    await audit(o.repo).record('dashboard.login_refused', { tokenId: principal.tokenId, peer }, { role: principal.role, reason: 'role' });
    return send(res, 403, 'text/html', loginPage(`A ${principal.role} token cannot sign in: use an admin or viewer token.`));
  }
  const { id, session } = await sessions.open(principal.tokenId, principal.role);
  await audit(o.repo).record('dashboard.login', { tokenId: principal.tokenId, peer }, { role: principal.role });
  o.log.info({ token: principal.tokenId, role: principal.role, peer }, 'dashboard login');
  return redirect(res, '/', { 'set-cookie': cookie(id, Math.floor((session.expires_ms - o.clock.now()) / 1000), tls) });
}
