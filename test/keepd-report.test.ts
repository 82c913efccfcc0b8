/**
 * `keepd report` against a real keepd whose clock moves on (KEEP_CLOCK_OFFSET_MS,
 * for keepd and the agent alike): backups at 0, +1.5 h and +3 h, a failed run
 * report at +1.5 h, a drill at +3 h. The report's figures are the ones those
 * events give: attempts and successes, RPO compliance (the `lower` tier's 1 h
 * RPO) over the whole history and over a 2 h window, the drill and its RTO
 * against the tier's target, and the bytes each snapshot added.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recordedTime, Repository } from '@keep/core';
import { keepdRepoOptions } from '@keep/server/dist/data-lock.js';
import { tempDirs } from './helpers.js';
import { createToken, Keepd, keepdInit, keepdJson, keepJson, killAllKeepd, reportRuns, runKeep, runKeepd, startKeepd, Token } from './keepd-harness.js';

const PASSWORD = 'dr report passphrase';
const H = 3600_000;
const tmp = tempDirs();

describe('keepd report', () => {
  const dir = tmp.make('keep-report-');
  const data = path.join(dir, 'data');
  const src = path.join(dir, 'src');
  let token: Token;
  let admin: Token;
  let drillMs = 0;
  const at = (offsetMs: number) => ({ KEEP_CLOCK_OFFSET_MS: String(offsetMs) });
  const env = (k: Keepd, offsetMs: number) => ({ KEEP_REPO: k.url, KEEP_TOKEN: token.token, KEEP_PASSWORD: PASSWORD, ...at(offsetMs) });
  const backup = async (offsetMs: number, fill: number) => {
    fs.writeFileSync(path.join(src, `f${fill}.bin`), Buffer.alloc(256 * 1024).map((_, i) => (i * (fill + 7919)) & 0xff));
    const k = await startKeepd(data, { env: at(offsetMs) });
    await keepJson(['backup', src, '--source', 'web', '--tier', 'lower'], env(k, offsetMs));
    return k;
  };

  beforeAll(async () => {
    fs.mkdirSync(src);
    await keepdInit(data);
    token = await createToken(data, 'agent', { sources: ['web'] });
    admin = await createToken(data, 'admin');
    let k = await startKeepd(data);
    await keepJson(['init', '--kdf-cost', '12'], env(k, 0));
    await k.stop();
    k = await backup(0, 1);
    await k.stop();
    k = await backup(1.5 * H, 2);
    // an agent's failed run, as `keep agent run` reports it
    const now = BigInt(Date.now() + 1.5 * H);
    const sent = await reportRuns(k.url.replace('grpc://', ''), token.token, [{ id: 'cd'.repeat(16), source: 'web', result: 'failure', startMs: now - 1000n, endMs: now }]);
    expect(sent.ok).toBe(true);
    await k.stop();
    k = await backup(3 * H, 3);
    const r = await runKeep(['drill', '--source', 'web', '--json'], env(k, 3 * H));
    expect(r.code, r.stderr).toBe(0);
    const d = JSON.parse(r.stdout.trim().split('\n').at(-1)!);
    expect(d.result).toBe('success');
    drillMs = d.duration_ms;
    await k.stop();
  });
  afterAll(killAllKeepd);

  /** the snapshots' recorded times (keepd's clock) and the bytes each added, read from the repository */
  const events = () => Repository.using(data, async (repo) => repo.snapshots({ source: 'web' }).map((s) => ({ t: recordedTime(s), sent: s.stats.bytes_sent, bytes: s.stats.bytes })).sort((a, b) => a.t - b.t), keepdRepoOptions(data));

  it('over the whole history: 4 attempts, 3 successes, RPO compliance from the snapshot times, the drill against the tier RTO', async () => {
    const snaps = await events();
    expect(snaps).toHaveLength(3);
    const [t1, t2, t3] = snaps.map((s) => s.t);
    const r = await keepdJson(['report', '--data', data, '--since', '30d'], { env: at(3 * H) });
    const end = r.window.end_ms;
    expect(end - r.window.start_ms).toBe(30 * 24 * H);
    const web = r.sources.find((s: any) => s.source === 'web');
    expect(web.tier).toBe('lower');
    expect(web.backups).toEqual({ attempted: 4, succeeded: 3, failed: 1, success_rate: 0.75, basis: 'run reports and snapshots' });
    // gaps of 1.5 h against a 1 h RPO: each of the first two snapshots covers one hour; the last covers up to now
    expect(t2 - t1).toBeGreaterThan(H);
    expect(t3 - t2).toBeGreaterThan(H);
    expect(end - t3).toBeLessThan(H);
    expect(web.rpo).toMatchObject({ rpo_s: 3600, origin: 'tier', within_ms: 2 * H + (end - t3), measured_ms: end - t1 });
    expect(web.rpo.share).toBe(Math.round(((2 * H + (end - t3)) / (end - t1)) * 10_000) / 10_000);
    expect(web.drills).toMatchObject({ count: 1, failures: 0, last_result: 'success', longest_s: drillMs / 1000, within_target: 1, rto_target_s: 86_400, rto_met: true });
    expect(web.drills.rto_estimate_s).toBeGreaterThan(0);
    expect(web.storage).toEqual({ new_bytes: snaps.reduce((n, s) => n + s.sent, 0), size_first: snaps[0].bytes, size_last: snaps[2].bytes });
    expect(r.replicas).toEqual([]);
  });

  it('over a 2 h window: the window starts late (the first snapshot is older than its RPO), and the Markdown says the same', async () => {
    const [, t2, t3] = (await events()).map((s) => s.t);
    const r = await keepdJson(['report', '--data', data, '--since', '2h'], { env: at(3 * H) });
    const end = r.window.end_ms;
    expect(end - r.window.start_ms).toBe(2 * H);
    const web = r.sources.find((s: any) => s.source === 'web');
    expect(r.window.start_ms).toBeLessThan(t2);
    expect(web.backups).toMatchObject({ attempted: 3, succeeded: 2, failed: 1 });
    expect(web.rpo).toMatchObject({ within_ms: H + (end - t3), measured_ms: 2 * H });
    expect(web.drills.count).toBe(1);
    const md = await runKeepd(['report', '--data', data, '--since', '2h', '--format', 'md'], { env: at(3 * H) });
    expect(md.code, md.stderr).toBe(0);
    expect(md.stdout).toMatch(/^\| web \| lower \| 3 \| 2 \| 1 \| 66\.67 % \| run reports and snapshots \|$/m);
    expect(md.stdout).toMatch(/^\| web \| 1 \| 0 \| \S+ s \| 1 \| .+ \| 24\.0 h \| yes \|$/m);
    expect(md.stdout).toMatch(/^## RPO compliance$/m);
    const bad = await runKeepd(['report', '--data', data, '--format', 'csv']);
    expect(bad.code).toBe(2);
  });

  it('keep admin report: the same figures over gRPC for an admin token (audited), refused to an agent token', async () => {
    const [t1] = (await events()).map((s) => s.t);
    const local = await keepdJson(['report', '--data', data, '--since', '30d'], { env: at(3 * H) });
    const k = await startKeepd(data, { env: at(3 * H) });
    const asAdmin = { KEEP_REPO: k.url, KEEP_TOKEN: admin.token, ...at(3 * H) };
    const remote = JSON.parse((await runKeep(['admin', 'report', '--since', '30d', '--json'], asAdmin)).stdout);
    const [l, r] = [local.sources[0], remote.sources[0]];
    expect(r.source).toBe('web');
    expect(r.backups).toEqual(l.backups);
    expect(r.drills).toEqual(l.drills);
    expect(r.storage).toEqual(l.storage);
    expect(r.rpo.measured_ms).toBe(remote.window.end_ms - t1);
    const md = await runKeep(['admin', 'report', '--since', '2h'], asAdmin);
    expect(md.code, md.stderr).toBe(0);
    expect(md.stdout).toMatch(/^\| web \| lower \| 3 \| 2 \| 1 \| 66\.67 % \| run reports and snapshots \|$/m);
    const refused = await runKeep(['admin', 'report'], { ...asAdmin, KEEP_TOKEN: token.token });
    expect(refused.code).toBe(1);
    await k.stop();
    const audit = await keepdJson(['audit', 'list', '--data', data, '--event', 'admin.report']);
    expect(audit.length).toBe(2);
  });
});
