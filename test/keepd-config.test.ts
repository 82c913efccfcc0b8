/**
 * keepd.yaml: `keepd check-config` names file:line:key for each problem
 * (exit 2) and accepts a complete file (exit 0); `keepd serve --config`
 * refuses a bad file before it listens; a scheduled forget+prune runs inside
 * a real keepd, applies the configured retention, and is recorded with its
 * outcome in state.mdb (keepd status --json).
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { tempDirs } from './helpers.js';
import { createToken, keepdInit, keepdJson, keepJson, killAllKeepd, runKeepd, startKeepd } from './keepd-harness.js';

const tmp = tempDirs();

/** The complete keepd.yaml the README's operations section shows. */
export const COMPLETE_CONFIG = `# keepd serve --config /etc/keep/keepd.yaml
watchdog:
  interval: 5s          # how often sources, replicas, storage and maintenance are judged
  hysteresis: 2         # evaluations a new state must hold before it is taken
  failures: 1           # consecutive failed runs that make a source failing
  failure_window: 24h   # the window of the failure rate
  storage_warn_days: 7  # full within this many days at the observed growth: a warning
sources:
  - match: db-main            # a source name...
    tier: critical
    rpo: 1m                   # default: the tier's RPO
    retention: tier           # the tier's preset
    replicas: { count: 1, mode: sync }
    drill: { interval: 30d, rto: 15m }
  - match: "web-*"            # ...or a glob
    tier: standard
    retention: { keep_last: 10, keep_daily: 14, keep_weekly: 8, keep_within: 2d }
maintenance:
  forget_prune: { schedule: { cron: "0 3 * * *" } }
  check: { schedule: { cron: "0 4 * * 0" }, read_data_subset: 5% }
`;

describe('keepd check-config', () => {
  const dir = tmp.make('keep-keepd-config-');

  it('accepts a complete keepd.yaml (exit 0)', async () => {
    const file = path.join(dir, 'good.yaml');
    fs.writeFileSync(file, COMPLETE_CONFIG);
    const r = await keepdJson(['check-config', '--config', file]);
    expect(r).toEqual({ ok: true, file, sources: 2, maintenance: ['forget_prune', 'check'], receivers: [] });
  });

  it("accepts the CLI contract's minimal keepd.yaml: alerts.webhooks are webhook receivers", async () => {
    const file = path.join(dir, 'minimal.yaml');
    fs.writeFileSync(file, 'sources:\n  - match: "web*"\n    tier: high\n    rpo: 5m\nalerts:\n  webhooks:\n    - url: http://127.0.0.1:9999/hook\n');
    expect(await keepdJson(['check-config', '--config', file])).toEqual({ ok: true, file, sources: 1, maintenance: [], receivers: ['webhook-1'] });
    const clash = path.join(dir, 'clash.yaml');
    fs.writeFileSync(clash, 'alerts:\n  receivers:\n    - { name: webhook-1, type: slack, url: "https://hooks.example/x" }\n  webhooks:\n    - url: http://127.0.0.1:9999/hook\n');
    const r = await runKeepd(['check-config', '--config', clash]);
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe(`${clash}:5: alerts.webhooks[0]: its name webhook-1 is a receiver's too: rename that receiver`);
  });

  it('names file:line:key for each problem and exits 2', async () => {
    const file = path.join(dir, 'bad.yaml');
    fs.writeFileSync(
      file,
      ['watchdog:', '  interval: soon', 'sources:', '  - match: db', '    tier: gold', '    retension: tier', '  - match: web', '    rpo: 1m', '    interval: 2m', 'maintenance:', '  check:', '    schedule: { cron: "99 * * * *" }', '    read_data_subset: 250%', ''].join('\n'),
    );
    const r = await runKeepd(['check-config', '--config', file]);
    expect(r.code).toBe(2);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toEqual([
      `${file}:2: watchdog.interval: must be a duration such as 30s, 15m or 1h30m, not "soon"`,
      `${file}:5: sources[0].tier: must be one of critical, high, standard, lower`,
      `${file}:6: sources[0].retension: unknown key`,
      `${file}:12: maintenance.check.schedule.cron: not a cron expression: Invalid value for minute: 99`,
      `${file}:13: maintenance.check.read_data_subset: must be a percentage in (0, 100]`,
    ]);
    const j = await runKeepd(['check-config', '--config', file, '--json']);
    expect(j.code).toBe(2);
    expect(JSON.parse(j.stdout)).toMatchObject({ ok: false, problems: lines });
  });

  it('checks relations between keys once the shape is right', async () => {
    const file = path.join(dir, 'both.yaml');
    fs.writeFileSync(file, 'sources:\n  - match: web\n    rpo: 1m\n    interval: 2m\n');
    const r = await runKeepd(['check-config', '--config', file]);
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe(`${file}:4: sources[0].interval: give rpo or interval, not both`);
  });

  it('YAML syntax errors name their line; a missing file is named', async () => {
    const file = path.join(dir, 'syntax.yaml');
    fs.writeFileSync(file, 'watchdog:\n  interval: 5s\n   hysteresis: [\n');
    const r = await runKeepd(['check-config', '--config', file]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(new RegExp(`^${file}:\\d+: `));
    const missing = await runKeepd(['check-config', '--config', path.join(dir, 'nope.yaml')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('nope.yaml: cannot read the config: ENOENT');
  });

  it('keepd serve --config refuses a bad file before it listens', async () => {
    const data = path.join(dir, 'data');
    await keepdInit(data);
    const r = await runKeepd(['serve', '--data', data, '--listen', '127.0.0.1:0', '--config', path.join(dir, 'bad.yaml')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`keepd: error: ${path.join(dir, 'bad.yaml')}:2: watchdog.interval`);
    expect(r.stderr).toContain(`${path.join(dir, 'bad.yaml')}:6: sources[0].retension: unknown key`);
    expect(r.stdout).not.toContain('listening');
  });
});

describe('scheduled maintenance in keepd serve', () => {
  afterAll(killAllKeepd);

  it('runs forget+prune on its schedule with the configured retention and records each run', async () => {
    const dir = tmp.make('keep-keepd-maint-');
    const data = path.join(dir, 'data');
    const src = path.join(dir, 'src');
    fs.mkdirSync(src);
    const cfg = path.join(dir, 'keepd.yaml');
    // db keeps its newest snapshot; other sources have no retention here and are left alone
    fs.writeFileSync(cfg, 'watchdog: { interval: 500ms }\nsources:\n  - match: db\n    retention: { keep_last: 1 }\nmaintenance:\n  forget_prune: { schedule: { every: 2s } }\n');
    await keepdInit(data);
    const token = await createToken(data, 'agent', { sources: ['db', 'other'] });
    const keepd = await startKeepd(data, { args: ['--config', cfg] });
    const env = { KEEP_REPO: keepd.url, KEEP_TOKEN: token.token, KEEP_PASSWORD: 'maintenance passphrase' };
    await keepJson(['init', '--kdf-cost', '12'], env);
    for (let i = 0; i < 3; i++) {
      fs.writeFileSync(path.join(src, 'f.txt'), `version ${i} `.repeat(1000));
      await keepJson(['backup', src, '--source', 'db'], env);
      await keepJson(['backup', src, '--source', 'other'], env);
    }
    const deadline = Date.now() + 30_000;
    let s: any;
    for (;;) {
      s = await keepdJson(['status', '--data', data]);
      const counts = Object.fromEntries((s.sources as { source: string; snapshots: number }[]).map((x) => [x.source, x.snapshots]));
      const runs = s.watchdog.maintenance as { task: string; outcome: string; end_ms: number; result: { snapshots_removed: number } }[];
      const removed = runs.reduce((n, r) => n + (r.result?.snapshots_removed ?? 0), 0);
      if (counts.db === 1 && removed >= 2) {
        expect(counts.other).toBe(3);
        expect(runs.every((r) => r.task === 'forget_prune' && r.outcome === 'success')).toBe(true);
        break;
      }
      if (Date.now() > deadline) throw new Error(`forget+prune did not run: ${JSON.stringify(s.watchdog.maintenance)}`);
      await new Promise((r) => setTimeout(r, 300));
    }
    // the watchdog holds the task's state; a restore of the newest snapshot still works after prune
    expect((s.watchdog.states as { kind: string; name: string; state: string }[]).find((x) => x.kind === 'maintenance')).toMatchObject({ name: 'forget_prune', state: 'ok' });
    const target = path.join(dir, 'restored');
    await keepJson(['restore', 'latest', '--source', 'db', '--target', target], env);
    expect(fs.readFileSync(path.join(target, ...src.split(path.sep).filter(Boolean), 'f.txt'), 'utf8')).toBe('version 2 '.repeat(1000));
    // each scheduled run is in the audit log, by keepd itself, and the chain holds
    const records = (await keepdJson(['audit', 'list', '--data', data])) as { event: string; peer?: string; fields?: Record<string, unknown> }[];
    expect(records.filter((r) => r.event === 'forget').length).toBeGreaterThanOrEqual(1);
    expect(records.filter((r) => r.event === 'prune').length).toBeGreaterThanOrEqual(1);
    expect(records.some((r) => r.event === 'maintenance.success')).toBe(true);
    expect((await keepdJson(['audit', 'verify', '--data', data])).ok).toBe(true);
    await keepd.stop();
  });
});
