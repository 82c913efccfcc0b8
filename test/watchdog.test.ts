/**
 * keepd's watchdog with a real keepd (keepd.yaml via --config) and a real
 * `keep backup` over gRPC, on short intervals: a source goes ok -> late ->
 * missed as time passes without a backup and back to ok after one; a
 * failed run reported by an agent (ReportRuns) makes it failing;
 * `keepd status --check` gives the monitoring-plugin exit codes; /metrics
 * has the control families and keep_backup_runs_total survives a restart.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDirs } from './helpers.js';
import { createToken, Keepd, keepdInit, keepJson, killAllKeepd, metric, reportRuns, runKeepd, scrape, startKeepd, Token } from './keepd-harness.js';

const PASSWORD = 'watchdog passphrase';
const tmp = tempDirs();

/**
 * RPO 20 s: late after 20 s without a snapshot, missed after 40 s; evaluated every 300 ms, a state
 * taken after 2 evaluations. Wide enough that each state outlasts a `keepd status` and a `keep
 * backup` on a loaded CI machine (each a Node start: seconds there).
 */
const CONFIG = `watchdog:
  interval: 300ms
  hysteresis: 2
sources:
  - match: "db*"
    rpo: 20s
`;

interface Held {
  kind: string;
  name: string;
  state: string;
  severity: number;
}

async function states(data: string): Promise<Held[]> {
  const r = await runKeepd(['status', '--data', data, '--json']);
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout).watchdog.states as Held[];
}

/** Poll the source's held state until it is `want` (keepd status from another process, as an operator would). */
async function waitForState(data: string, source: string, want: string, timeoutMs = 90_000): Promise<number> {
  const start = Date.now();
  let last: string | undefined;
  while (Date.now() - start < timeoutMs) {
    last = (await states(data)).find((s) => s.kind === 'source' && s.name === source)?.state;
    if (last === want) return Date.now() - start;
    await new Promise((r) => setTimeout(r, 150));
  }
  throw new Error(`source ${source} stayed ${last}, never ${want}`);
}

async function check(data: string): Promise<{ code: number | null; line: string }> {
  const r = await runKeepd(['status', '--data', data, '--check']);
  return { code: r.code, line: r.stdout.trim() };
}

describe('the watchdog judges sources from stored facts', { timeout: 300_000 }, () => {
  const dir = tmp.make('keep-watchdog-');
  const data = path.join(dir, 'data');
  const src = path.join(dir, 'src');
  const cfg = path.join(dir, 'keepd.yaml');
  let keepd: Keepd;
  let token: Token;
  const env = () => ({ KEEP_REPO: keepd.url, KEEP_TOKEN: token.token, KEEP_PASSWORD: PASSWORD });
  const backup = () => keepJson(['backup', src, '--source', 'db'], env());

  beforeAll(async () => {
    fs.mkdirSync(src);
    fs.writeFileSync(path.join(src, 'a.txt'), 'watched');
    fs.writeFileSync(cfg, CONFIG);
    await keepdInit(data);
    token = await createToken(data, 'agent', { sources: ['db', 'adhoc'] });
    keepd = await startKeepd(data, { metrics: true, args: ['--config', cfg] });
    await keepJson(['init', '--kdf-cost', '12'], env());
  });
  afterAll(killAllKeepd);

  it('status --check is UNKNOWN for a repository no keepd watches', async () => {
    const other = path.join(tmp.make('keep-watchdog-none-'), 'data');
    await keepdInit(other);
    const r = await check(other);
    expect(r.code).toBe(3);
    expect(r.line).toMatch(/^KEEP UNKNOWN - /);
  });

  it('a source goes ok, late, missed without backups, and ok again after one', async () => {
    await backup();
    await waitForState(data, 'db', 'ok');
    expect(await check(data)).toMatchObject({ code: 0, line: expect.stringMatching(/^KEEP OK - 1 source/) });
    const toLate = await waitForState(data, 'db', 'late');
    const c1 = await check(data);
    expect(c1.code).toBe(1);
    expect(c1.line).toBe('KEEP WARNING - source db late');
    await waitForState(data, 'db', 'missed');
    expect(await check(data)).toMatchObject({ code: 2, line: 'KEEP CRITICAL - source db missed' });
    await backup();
    await waitForState(data, 'db', 'ok');
    // the transitions are stored, in order, with keepd's times
    const s = JSON.parse((await runKeepd(['status', '--data', data, '--json'])).stdout);
    const path = (s.watchdog.transitions as { kind: string; name: string; from: string | null; to: string }[])
      .filter((t) => t.kind === 'source' && t.name === 'db')
      .reverse()
      .map((t) => `${t.from}->${t.to}`);
    expect(path).toEqual(['null->ok', 'ok->late', 'late->missed', 'missed->ok']);
    expect(toLate).toBeGreaterThan(0);
    // the per-source metrics follow the held state
    const text = await scrape(keepd);
    expect(metric(text, 'keep_source_state{source="db",state="ok"}')).toBe(1);
    expect(metric(text, 'keep_source_state{source="db",state="missed"}')).toBe(0);
    expect(metric(text, 'keep_source_rpo_seconds{source="db"}')).toBe(20);
    const last = metric(text, 'keep_source_last_success_timestamp_seconds{source="db"}')!;
    expect(Math.abs(last - Date.now() / 1000)).toBeLessThan(30);
  });

  it('a failed run an agent reports makes the source failing (CRITICAL), counted in keep_backup_runs_total across restarts', async () => {
    await backup();
    const report = (id: string, result: 'success' | 'failure') => reportRuns(`127.0.0.1:${keepd.port}`, token.token, [{ id, source: 'db', result }]);
    expect((await report('a1'.repeat(16), 'success')).ok).toBe(true);
    expect((await report('f1'.repeat(16), 'failure')).ok).toBe(true);
    await waitForState(data, 'db', 'failing');
    const c = await check(data);
    expect(c.code).toBe(2);
    expect(c.line).toContain('source db failing');

    const before = await scrape(keepd);
    expect(before).toContain('# TYPE keep_backup_runs_total counter');
    for (const family of ['keep_source_last_success_timestamp_seconds', 'keep_source_rpo_seconds', 'keep_source_state', 'keep_replica_lag_seconds', 'keep_storage_free_bytes', 'keep_storage_days_to_full', 'process_resident_memory_bytes']) expect(before).toContain(`# TYPE ${family} `);
    expect(metric(before, 'keep_backup_runs_total{source="db",result="failure"}')).toBe(1);
    expect(metric(before, 'keep_backup_runs_total{source="db",result="success"}')).toBe(1);

    // a restart: the counters come from state.mdb, not from the process
    await keepd.stop();
    keepd = await startKeepd(data, { metrics: true, args: ['--config', cfg] });
    const after = await scrape(keepd);
    expect(metric(after, 'keep_backup_runs_total{source="db",result="failure"}')).toBe(1);
    expect(metric(after, 'keep_backup_runs_total{source="db",result="success"}')).toBe(1);
    // the held state survives too: no new transition into failing after the restart
    await new Promise((r) => setTimeout(r, 1000));
    const s = JSON.parse((await runKeepd(['status', '--data', data, '--json'])).stdout);
    expect((s.watchdog.transitions as { name: string; to: string }[]).filter((t) => t.name === 'db' && t.to === 'failing')).toHaveLength(1);

    // a success ends the streak
    await backup();
    expect((await report('a2'.repeat(16), 'success')).ok).toBe(true);
    await waitForState(data, 'db', 'ok');
  });

  it('a source nobody configured is expected every 1.5 x its median interval once it has two snapshots', async () => {
    await keepJson(['backup', src, '--source', 'adhoc'], env());
    const first = Date.now();
    let held = (await states(data)).find((x) => x.name === 'adhoc');
    await new Promise((r) => setTimeout(r, 6000));
    expect((await states(data)).find((x) => x.name === 'adhoc')).toMatchObject({ state: 'unknown', severity: 0 });
    await keepJson(['backup', src, '--source', 'adhoc'], env());
    const gapS = (Date.now() - first) / 1000;
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      held = (await states(data)).find((x) => x.name === 'adhoc');
      if (held?.state === 'ok') break;
      await new Promise((r) => setTimeout(r, 150));
    }
    const detail = (held as unknown as { detail: { expectation: string; rpo_s: number } }).detail;
    expect(held!.state).toBe('ok');
    expect(detail.expectation).toBe('observed');
    // the gap keepd recorded lies within the client's window around the two backups
    expect(detail.rpo_s).toBeGreaterThan(1.5 * 5.9);
    expect(detail.rpo_s).toBeLessThan(1.5 * (gapS + 1));
    expect(metric(await scrape(keepd), 'keep_source_rpo_seconds{source="adhoc"}')).toBeCloseTo(detail.rpo_s, 2);
  });

  it('status --check is UNKNOWN once keepd stops watching', async () => {
    await keepd.stop();
    await new Promise((r) => setTimeout(r, 1200)); // > 3 intervals
    const c = await check(data);
    expect(c.code).toBe(3);
    expect(c.line).toMatch(/^KEEP UNKNOWN - the watchdog last evaluated/);
  });
});
