/**
 * Measured RTO with a real keepd and a real `keep drill` over gRPC: an RTO
 * target set below the drill's measured time gives the watchdog's
 * rto_exceeded condition and its alert; `keepd status` and /metrics show
 * the last drill, its measured time, the RTO estimate and the target; the
 * estimate follows the source's current size (the latest snapshot's bytes
 * at the measured rate, plus the measured start-up) without a new drill.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDirs } from './helpers.js';
import { createToken, Keepd, keepdInit, keepdJson, keepJson, killAllKeepd, metric, runKeep, runKeepd, scrape, startKeepd, Token, waitFor } from './keepd-harness.js';

const PASSWORD = 'drill rto passphrase';
const tmp = tempDirs();

/** An RTO target of 1 ms: no real drill meets it. */
const CONFIG = `watchdog:
  interval: 300ms
  hysteresis: 2
sources:
  - match: files
    drill: { interval: 1h, rto: 1ms }
`;

describe('measured RTO', () => {
  const dir = tmp.make('keep-drill-rto-');
  const data = path.join(dir, 'data');
  const src = path.join(dir, 'src');
  const cfg = path.join(dir, 'keepd.yaml');
  let keepd: Keepd;
  let token: Token;
  const env = () => ({ KEEP_REPO: keepd.url, KEEP_TOKEN: token.token, KEEP_PASSWORD: PASSWORD });
  const row = async () => ((await keepdJson(['status', '--data', data, '--json'])).drills as any[]).find((x) => x.source === 'files');

  beforeAll(async () => {
    fs.mkdirSync(src);
    fs.writeFileSync(path.join(src, 'a.bin'), Buffer.alloc(2 * 1024 * 1024).map((_, i) => (i * 7919) & 0xff));
    fs.writeFileSync(cfg, CONFIG);
    await keepdInit(data);
    token = await createToken(data, 'agent', { sources: ['files'] });
    keepd = await startKeepd(data, { metrics: true, args: ['--config', cfg] });
    await keepJson(['init', '--kdf-cost', '12'], env());
    await keepJson(['backup', src, '--source', 'files'], env());
  });
  afterAll(killAllKeepd);

  it('an RTO target below the measured time raises rto_exceeded and its alert; status and metrics show the figures', async () => {
    const r = await runKeep(['drill', '--source', 'files', '--json'], env());
    expect(r.code, r.stderr).toBe(0);
    const d = JSON.parse(r.stdout.trim().split('\n').at(-1)!);
    expect(d.result).toBe('success');
    await waitFor(async () => {
      const s = await keepdJson(['status', '--data', data, '--json']);
      return (s.watchdog.states as any[]).some((x) => x.kind === 'drill' && x.name === 'files' && x.state === 'rto_exceeded');
    }, 30_000, 200);
    await waitFor(async () => ((await keepdJson(['alerts', '--data', data, '--json'])).active as any[]).some((x) => x.kind === 'drill' && x.condition === 'rto_exceeded'), 30_000, 200);
    const s = await row();
    expect(s).toMatchObject({ last_result: 'success', last_mode: 'write', rto_target_s: 0.001, drill_s: d.duration_ms / 1000 });
    // the drilled snapshot is the latest: the estimate is the drill's own time, near enough
    expect(s.rto_estimate_s).toBeGreaterThan(0.001);
    expect(Math.abs(s.rto_estimate_s - d.duration_ms / 1000)).toBeLessThan(0.05 + d.duration_ms / 1000 / 100);
    expect(s.rto_method).toMatch(/start-up time \+ the latest snapshot's bytes/);
    const human = await runKeepd(['status', '--data', data]);
    expect(human.stdout).toMatch(/^restore drills /m);
    expect(human.stdout).toMatch(new RegExp(`^files +last success \\S+ \\(write, ${d.duration_ms / 1000}s\\)  RTO estimate [0-9.]+s \\(target 0.001s\\)  rto_exceeded$`, 'm'));
    const text = await scrape(keepd);
    expect(metric(text, 'keep_source_rto_target_seconds{source="files"}')).toBe(0.001);
    expect(metric(text, 'keep_source_rto_estimate_seconds{source="files"}')).toBeCloseTo(s.rto_estimate_s, 2);
    expect(metric(text, 'keep_source_drill_seconds{source="files",mode="write"}')).toBe(d.duration_ms / 1000);
    expect(metric(text, 'keep_source_last_drill_timestamp_seconds{source="files",result="success"}')).toBeGreaterThan(0);
  });

  it('the estimate follows the source\'s current size at the measured rate', async () => {
    const before = await row();
    fs.writeFileSync(path.join(src, 'b.bin'), Buffer.alloc(6 * 1024 * 1024).map((_, i) => (i * 104729) & 0xff));
    await keepJson(['backup', src, '--source', 'files'], env());
    const after = await row();
    expect(after.drills).toBe(1);
    expect(after.current_bytes).toBeGreaterThan(before.current_bytes * 3);
    expect(after.rate_bytes_s).toBe(before.rate_bytes_s); // the same drill measured it
    const setup = before.rto_estimate_s - before.current_bytes / before.rate_bytes_s; // the measured start-up in the first figure
    expect(after.rto_estimate_s).toBeCloseTo(setup + after.current_bytes / after.rate_bytes_s, 1);
    expect(after.rto_estimate_s).toBeGreaterThan(before.rto_estimate_s);
  });
});
