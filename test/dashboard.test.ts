/**
 * Issue 19: keepd's operators' dashboard (`keepd serve --http`) in a real
 * headless Chromium (Debian's chromium, driven by playwright-core) against a
 * real keepd with real sources backed up by `keep` over gRPC:
 * - "old" was backed up three days ago (keepd and agent on a clock set back
 *   with KEEP_CLOCK_OFFSET_MS) and shows late against its tier's RPO;
 * - "web" is fresh and has a failed run an agent reported;
 * - "hot" has a 20 s RPO in keepd.yaml: its alert appears on the open alerts
 *   page without a reload once it goes late;
 * - a replica follows the primary and reports to it;
 * - "web" was drilled (`keep drill`) and "old" has a failed drill an agent
 *   reported: the Drill (RTO) column and the source page's Drills section
 *   show them with keepd status's figures.
 * No page or endpoint answers without a session; a viewer token signs in but
 * makes no RPC; logout ends the session; tokens never reach keepd's log.
 * The replicas page charts each replica's lag against the RPO from its stored
 * reports; the storage page charts the watchdog's usage samples with the
 * growth trend, and days to full is keepd status's figure.
 * Screenshots of the overview, a source page, replicas and storage go to docs/img/ with KEEP_SCREENSHOTS=1
 * (README shows them), else to a scratch directory: a test run leaves the tree as it was.
 */
import fs from 'node:fs';
import path from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, tempDirs } from './helpers.js';
import { agentEnv, createToken, Keepd, keepdInit, keepdJson, keepJson, RawClient, reportRuns, runKeep, startKeepd, tokenSecret, wire } from './keepd-harness.js';
import { eventually, killAllServing, serveWith, status, syncOk } from './sync-util.js';

const CHROMIUM = '/usr/bin/chromium';
const PASSWORD = 'dashboard passphrase';
const tmp = tempDirs();

/** Where a screenshot goes: docs/img/ when asked for (KEEP_SCREENSHOTS=1), else a scratch directory. */
const SHOTS = process.env.KEEP_SCREENSHOTS === '1' ? path.join(ROOT, 'docs', 'img') : tmp.make('keep-dashboard-shots-');
const shot = (name: string) => path.join(SHOTS, name);

const CONFIG = `watchdog:
  interval: 300ms
  hysteresis: 2
sources:
  - match: "hot"
    rpo: 20s
maintenance:
  check:
    schedule:
      every: 3s
`;

describe.skipIf(!fs.existsSync(CHROMIUM))('the operators\' dashboard in a real browser', () => {
  const dir = tmp.make('keep-dashboard-');
  const data = path.join(dir, 'data');
  const replicaData = path.join(dir, 'replica');
  let keepd: Keepd;
  let base: string;
  let agent: string;
  let viewer: string;
  let admin: string;
  let replicaId: string;
  let ctx: BrowserContext;
  let page: Page;

  let grown = 0;
  /** A source directory whose file grows with each backup (the chart has a slope to show). */
  const src = (name: string, content: string) => {
    const d = path.join(dir, 'src', name);
    fs.mkdirSync(d, { recursive: true });
    grown += 1;
    fs.writeFileSync(path.join(d, `data-${grown}.bin`), content.repeat(1000 * grown));
    return d;
  };
  const backup = (k: Keepd, source: string, tier: string, extra: Record<string, string> = {}) => keepJson(['backup', src(source, `${source} ${Date.now()}\n`), '--source', source, '--tier', tier], agentEnv(k, agent, PASSWORD, extra));

  /** Sign in through the form, as an operator would. */
  async function signIn(token: string): Promise<void> {
    await page.goto(`${base}/login`);
    await page.fill('#token', token);
    await Promise.all([page.waitForLoadState('load'), page.click('button[type=submit]')]);
  }

  beforeAll(async () => {
    await keepdInit(data);
    agent = (await createToken(data, 'agent')).token;
    admin = (await createToken(data, 'admin')).token;
    viewer = (await createToken(data, 'viewer')).token;
    // three days ago, on keepd's and the agent's clocks: "old" is late now
    const past = { KEEP_CLOCK_OFFSET_MS: String(-3 * 86_400_000) };
    const before = await startKeepd(data, { env: past });
    await keepJson(['init', '--kdf-cost', '12'], agentEnv(before, agent, PASSWORD, past));
    await backup(before, 'old', 'lower', past);
    await before.stop();

    fs.writeFileSync(path.join(dir, 'keepd.yaml'), CONFIG);
    keepd = await startKeepd(data, { args: ['--http', '127.0.0.1:0', '--config', path.join(dir, 'keepd.yaml')] });
    expect(typeof keepd.listening.http).toBe('number');
    base = `http://127.0.0.1:${keepd.listening.http as number}`;
    await backup(keepd, 'web', 'standard');
    await backup(keepd, 'web', 'standard');
    await backup(keepd, 'hot', 'high');
    // a failed run of "web", as an agent reports it (ReportRuns)
    expect((await reportRuns(`127.0.0.1:${keepd.port}`, agent, [{ id: 'e1'.repeat(16), source: 'web', job: 'web-nightly', attempt: 2, result: 'failure' }])).ok).toBe(true);
    const { grpc, protobuf, proto } = await wire();
    // a real drill of "web"; a failed drill of "old", as an agent reports it (ReportDrills)
    const drilled = await runKeep(['drill', '--source', 'web', '--json'], agentEnv(keepd, agent, PASSWORD));
    expect(drilled.code, drilled.stderr).toBe(0);
    const failedDrill = protobuf.toBinary(
      proto.ReportDrillsRequestSchema,
      protobuf.create(proto.ReportDrillsRequestSchema, { drills: [{ id: 'd1'.repeat(16), source: 'old', snapshot: 'ab'.repeat(16), kind: 'files', mode: 'write', result: 'failure', startMs: BigInt(Date.now() - 1000), endMs: BigInt(Date.now()), durationMs: 900n, setupMs: 100n, errorClass: 'DAMAGED' }] }),
    );
    expect((await new RawClient(grpc, `127.0.0.1:${keepd.port}`, agent).unary('ReportDrills', failedDrill)).ok).toBe(true);

    // a replica following the primary; it reports to the primary, which lists it
    const replicaToken = (await createToken(data, 'replica')).token;
    await syncOk(replicaData, keepd.url, replicaToken);
    await serveWith(replicaData, ['--upstream', keepd.url, '--sync-interval', '60'], { KEEP_UPSTREAM_TOKEN: replicaToken });
    replicaId = fs.readFileSync(path.join(replicaData, 'replica-id'), 'utf8').trim();
    await eventually(() => status(data), (s) => s.replicas.some((r: { replica_id: string }) => r.replica_id === replicaId), 30_000);

    ctx = await chromium.launchPersistentContext(path.join(dir, 'chromium-profile'), {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      viewport: { width: 1280, height: 900 },
    });
    page = ctx.pages()[0] ?? (await ctx.newPage());
  }, 240_000);

  afterAll(async () => {
    await ctx?.close();
    await killAllServing();
  });

  it('answers nothing without a session', async () => {
    for (const p of ['/', '/sources/web', '/replicas', '/storage', '/alerts', '/audit', '/maintenance', '/assets/dashboard.js', '/assets/uplot.js', '/api/status']) {
      const res = await fetch(`${base}${p}`, { redirect: 'manual' });
      expect([303, 401], p).toContain(res.status);
      if (res.status === 303) expect(res.headers.get('location')).toBe('/login');
      expect(await res.text(), p).not.toContain('web');
    }
    // the browser lands on the login form
    await page.goto(`${base}/`);
    expect(new URL(page.url()).pathname).toBe('/login');
    // an agent token cannot sign in, nor can a made-up one
    await signIn(agent);
    expect(await page.textContent('#login-error')).toContain('agent token cannot sign in');
    await signIn(`keep_${'0'.repeat(16)}_${'A'.repeat(43)}`);
    expect(await page.textContent('#login-error')).toContain('Unknown or revoked');
  });

  it('a viewer token makes no RPC: the dashboard only', async () => {
    const r = await runKeep(['snapshots', '--json'], agentEnv(keepd, viewer, PASSWORD));
    expect(r.code).not.toBe(0);
    expect(r.stderr + r.stdout).toContain('viewer token signs in to the dashboard only');
  });

  it('signs in with a viewer token: a strict HttpOnly session cookie; the fleet overview shows every source, "old" late', async () => {
    await signIn(viewer);
    expect(new URL(page.url()).pathname).toBe('/');
    const [cookie] = await ctx.cookies(base);
    expect(cookie).toMatchObject({ name: 'keep_session', httpOnly: true, sameSite: 'Strict' });
    expect(cookie.expires).toBeGreaterThan(Date.now() / 1000);
    expect(await page.textContent('#card-sources')).toContain('3');
    const row = (s: string) => page.locator(`tr[data-source="${s}"]`);
    await expect.poll(() => row('old').locator('td.rpo [data-state]').getAttribute('data-state')).toBe('late');
    expect(await row('web').locator('td.rpo [data-state]').getAttribute('data-state')).toBe('ok');
    expect(await row('old').textContent()).toContain('lower');
    expect(await row('web').textContent()).toContain('standard');
    // last run of "web" is the failure its agent reported; one replica with its lag
    expect(await row('web').locator('td.run [data-state]').getAttribute('data-state')).toBe('failure');
    expect(await row('web').textContent()).toContain('1 · lag');
    // the figures are keepd status's: the same ages and states
    const s = await status(data);
    const old = s.sources.find((x: { source: string }) => x.source === 'old');
    expect(old.rpo_state).toBe('late');
    expect(old.age_s).toBeGreaterThan(2.9 * 86_400);
    expect(await row('old').textContent()).toMatch(/3\.0 d|2\.9 d/);
    // Drill (RTO): keepd status's drill rows, the estimate against the tier's target coloured
    const web = s.drills.find((x: { source: string }) => x.source === 'web');
    expect(web).toMatchObject({ last_result: 'success', rto_target_s: 7200 });
    expect(await row('web').locator('td.drill .last-drill [data-state]').getAttribute('data-state')).toBe('success');
    expect(await row('web').locator('td.drill [data-rto]').getAttribute('data-rto')).toBe(web.rto_estimate_s <= 7200 ? 'ok' : 'rto_exceeded');
    expect(await row('web').locator('td.drill').textContent()).toContain('/ 2.0 h');
    expect(await row('old').locator('td.drill .last-drill [data-state]').getAttribute('data-state')).toBe('failure');
    expect(await row('old').locator('td.drill [data-rto]').getAttribute('data-rto')).toBe('unknown');
    expect(await row('hot').locator('td.drill').textContent()).toContain('no drill yet');
    fs.mkdirSync(path.join(ROOT, 'docs', 'img'), { recursive: true });
    await page.screenshot({ path: shot('dashboard-overview.png'), fullPage: true });
    // the dark theme follows the system's (prefers-color-scheme)
    const background = () => page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    const light = await background();
    await page.emulateMedia({ colorScheme: 'dark' });
    expect(await background()).not.toBe(light);
    await page.screenshot({ path: shot('dashboard-overview-dark.png'), fullPage: true });
    await page.emulateMedia({ colorScheme: 'light' });
  });

  it('a source page charts its snapshots and sizes and lists its restore points and failures', async () => {
    await page.goto(`${base}/sources/web`);
    expect(await page.textContent('#source-name')).toBe('web');
    await expect.poll(() => page.locator('#chart-snapshots').getAttribute('data-drawn')).toBe('2');
    expect(await page.locator('#chart-snapshots canvas').count()).toBeGreaterThan(0);
    expect(await page.locator('#snapshots tbody tr').count()).toBe(2);
    expect(await page.textContent('#failures')).toContain('exit 3');
    expect(await page.textContent('#failures')).toContain('web-nightly');
    expect(await page.textContent('#card-runs')).toContain('0 / 1');
    // its drills: the one `keep drill` made, with keepd status's estimate against the target
    expect(await page.locator('#drills tbody tr').count()).toBe(1);
    expect(await page.locator('#drills tbody tr [data-state]').first().getAttribute('data-state')).toBe('success');
    expect(await page.locator('#card-rto [data-rto]').getAttribute('data-rto')).toBe('ok');
    expect(await page.textContent('#card-drills')).toContain('1 / 0');
    expect(await page.textContent('#rto-method')).toContain("latest snapshot's bytes");
    await page.screenshot({ path: shot('dashboard-source.png'), fullPage: true });
    await page.goto(`${base}/sources/old`);
    expect(await page.locator('#drills tbody tr').textContent()).toContain('DAMAGED');
    expect(await page.locator('#card-rto [data-rto]').getAttribute('data-rto')).toBe('unknown');
    expect((await page.goto(`${base}/sources/nope`))!.status()).toBe(404);
  });

  /** A chart's figures, as the page carries them (the JSON its script draws). */
  const chartOf = async (id: string) => JSON.parse((await page.locator(`script[data-chart="${id}"]`).textContent())!) as { x: number[]; series: { label: string; values: number[] }[]; unit: string; growth_bytes_per_day?: number | null };

  it('replicas, storage, maintenance and audit pages render their figures', async () => {
    await page.goto(`${base}/replicas`);
    expect(await page.locator(`tr[data-replica="${replicaId}"]`).count()).toBe(1);
    // the replica's lag over time against the RPO, from its stored reports: its last point is keepd status's lag now
    const lagChart = `chart-lag-${replicaId}`;
    await expect.poll(async () => Number(await page.locator(`#${lagChart}`).getAttribute('data-drawn')), { timeout: 30_000 }).toBeGreaterThanOrEqual(2);
    const lag = await chartOf(lagChart);
    const mine = (await status(data)).replicas.find((r: { replica_id: string }) => r.replica_id === replicaId);
    expect(lag.unit).toBe('seconds');
    expect(lag.series.map((x) => x.label)).toEqual(['lag', 'RPO']);
    expect(new Set(lag.series[1].values)).toEqual(new Set([mine.rpo_s]));
    expect(lag.x[0] * 1000).toBeLessThanOrEqual(Date.parse(mine.last_report));
    expect(lag.series[0].values.every((v) => v >= 0 && v <= mine.rpo_s)).toBe(true);
    expect(lag.series[0].values.at(-1)).toBe(mine.lag_s);
    expect(await page.locator(`#${lagChart} canvas`).count()).toBeGreaterThan(0);
    await page.screenshot({ path: shot('dashboard-replicas.png'), fullPage: true });

    await page.goto(`${base}/storage`);
    expect(await page.textContent('#card-used')).toMatch(/[KMGT]iB|B/);
    expect(await page.textContent('#card-free')).toMatch(/[KMGT]iB/);
    // days to full is keepd status's (the watchdog's) figure: the page and GetStatus's report (statusReport, keepd
    // status --json's code) asked together, as the watchdog re-evaluates a moving disk every 300 ms
    const [{ value: sessionCookie }] = await ctx.cookies(base);
    const asSession = { cookie: `keep_session=${sessionCookie}` };
    const daysOf = (html: string) => /id="card-days"><b>([^<]+)</.exec(html)![1];
    const sameDays = async () => {
      const [live, api] = await Promise.all([fetch(`${base}/storage`, { headers: { ...asSession, 'x-keep-live': '1' } }).then((r) => r.json()), fetch(`${base}/api/status`, { headers: asSession }).then((r) => r.json())]);
      const days = api.watchdog.states.find((h: { kind: string }) => h.kind === 'storage').detail.days_to_full;
      return daysOf(live.html) === (days === null ? 'not growing' : String(days));
    };
    await expect.poll(sameDays, { timeout: 30_000, intervals: [100] }).toBe(true);
    const cli = (await status(data)).watchdog.states.find((h: { kind: string }) => h.kind === 'storage');
    expect(Object.keys(cli.detail)).toEqual(expect.arrayContaining(['days_to_full', 'growth_bytes_per_day']));
    expect(await page.textContent('#card-days')).toMatch(cli.detail.days_to_full === null ? /not growing|\d/ : /\d/);
    // the chart: the watchdog's usage samples, the first from the keepd that ran three days ago, and the trend at its growth
    const usage = await chartOf('chart-storage');
    expect(usage.series.map((x) => x.label)).toEqual(['used', 'free', 'trend']);
    expect(usage.x.length).toBeGreaterThanOrEqual(2);
    expect(usage.x[0] * 1000).toBeLessThan(Date.now() - 2.9 * 86_400_000);
    expect(Number(await page.locator('#chart-storage').getAttribute('data-drawn'))).toBe(usage.x.length);
    const [used, free, trend] = usage.series.map((x) => x.values);
    expect(used.every((v, i) => v > 0 && v + free[i] === used[0] + free[0])).toBe(true);
    expect(trend[0]).toBe(used[0]);
    // the trend's slope is the growth per day the watchdog judged days to full by (trend points are whole bytes)
    const slope = ((trend.at(-1)! - trend[0]) / (usage.x.at(-1)! - usage.x[0])) * 86_400;
    expect(typeof usage.growth_bytes_per_day).toBe('number');
    expect(Math.abs(slope - usage.growth_bytes_per_day!)).toBeLessThanOrEqual(Math.abs(usage.growth_bytes_per_day!) * 0.001 + 2);
    await page.screenshot({ path: shot('dashboard-storage.png'), fullPage: true });
    // scheduled maintenance (check every 3 s) shows up live
    await page.goto(`${base}/maintenance`);
    await expect.poll(async () => (await page.locator('#maintenance').textContent()) ?? '', { timeout: 60_000 }).toContain('check');
    // the audit log, filtered by event, source and time
    await page.goto(`${base}/audit?event=dashboard`);
    expect(await page.textContent('#audit')).toContain('dashboard.login');
    expect(await page.textContent('#audit')).toContain('dashboard.login_refused');
    await page.goto(`${base}/audit?source=web&since=1h`);
    const events = await page.locator('#audit tbody tr td:nth-child(3)').allTextContents();
    expect(events.length).toBeGreaterThan(0);
    expect(await page.locator('#audit tbody tr td:nth-child(6)').allTextContents()).toEqual(events.map(() => 'web'));
    expect(events).toContain('session.commit');
  });

  it('an alert appears live on the open alerts page when a source goes late, and moves to resolved after a backup', async () => {
    // fresh again: wait until keepd holds "hot" ok with no alert firing, then watch it go late
    await backup(keepd, 'hot', 'high');
    await eventually(() => keepdJson(['alerts', '--data', data, '--json']), (a) => !a.active.some((x: { subject: string }) => x.subject === 'hot'), 30_000);
    await page.goto(`${base}/alerts`);
    const hotFiring = async () => (await page.locator('#alerts-active').textContent())?.includes('hot') ?? false;
    expect(await hotFiring()).toBe(false);
    await page.evaluate(() => ((window as unknown as { notReloaded: boolean }).notReloaded = true));
    await expect.poll(hotFiring, { timeout: 90_000, intervals: [500] }).toBe(true);
    expect(await page.evaluate(() => (window as unknown as { notReloaded?: boolean }).notReloaded)).toBe(true);
    expect(await page.locator('#alerts-active tr', { hasText: 'hot' }).locator('[data-state]').first().getAttribute('data-state')).toBe('late');
    // a backup resolves it: it moves to the resolved list, still without a reload
    await backup(keepd, 'hot', 'high');
    await expect.poll(hotFiring, { timeout: 60_000, intervals: [500] }).toBe(false);
    expect(await page.locator('#alerts-resolved').textContent()).toContain('hot');
    expect(await page.evaluate(() => (window as unknown as { notReloaded?: boolean }).notReloaded)).toBe(true);
  });

  it('is usable on a phone: no page wider than the screen', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    for (const p of ['/', '/sources/web', '/alerts']) {
      await page.goto(`${base}${p}`);
      expect(await page.evaluate(() => document.documentElement.scrollWidth), p).toBeLessThanOrEqual(390);
    }
    await page.setViewportSize({ width: 1280, height: 900 });
  });

  it('logout needs the CSRF token and ends the session; tokens never reach the log', async () => {
    const [cookie] = await ctx.cookies(base);
    const asCookie = { cookie: `keep_session=${cookie.value}` };
    // a POST without the page's CSRF token is refused, the session stays
    const forged = await fetch(`${base}/logout`, { method: 'POST', headers: { ...asCookie, 'content-type': 'application/x-www-form-urlencoded' }, body: 'csrf=guess', redirect: 'manual' });
    expect(forged.status).toBe(403);
    expect((await fetch(`${base}/api/status`, { headers: asCookie })).status).toBe(200);
    await page.goto(`${base}/`);
    await Promise.all([page.waitForURL(/\/login$/), page.click('#logout')]);
    await page.goto(`${base}/`);
    expect(new URL(page.url()).pathname).toBe('/login');
    expect((await fetch(`${base}/api/status`, { headers: asCookie })).status).toBe(401);
    const audit = await fetch(`${base}/audit`, { headers: asCookie, redirect: 'manual' });
    expect(audit.status).toBe(303);
    // an admin token signs in too
    await signIn(admin);
    expect(await page.textContent('header')).toContain('admin');
    for (const t of [agent, admin, viewer]) expect(keepd.output()).not.toContain(tokenSecret(t));
  });
});
