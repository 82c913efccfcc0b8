/**
 * Scheduled sync and replica lag with real keepd processes on short
 * intervals: a replica keepd pulls from its primary on a keepd.yaml schedule
 * (maintenance.sync, inside `keepd serve`), each run recorded and audited;
 * when it stops syncing, the primary's watchdog (every 300 ms, RPO 4 s) sees
 * its lag grow past the RPO, holds the replica `lagging` and delivers one
 * webhook; the replica back on its schedule catches up and the alert
 * resolves, again once. A scheduled sync that fails raises the maintenance
 * alert on the replica.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDirs } from './helpers.js';
import { agentEnv, createToken, Keepd, keepdInit, keepdJson, keepJson, runKeepd } from './keepd-harness.js';
import { killAllServing, metricValue, scrape, serveWith, snapshotFiles, status, syncOk } from './sync-util.js';
import { Receiver, until } from './webhook-receiver.js';

const PASSWORD = 'replica lag passphrase';
const tmp = tempDirs();

const replicaState = async (data: string, id: string) => (await status(data)).watchdog.states.find((s: any) => s.kind === 'replica' && s.name === id)?.state as string | undefined;

describe('a replica that stops syncing raises lag on its primary', () => {
  const dir = tmp.make('keep-replica-lag-');
  const P = path.join(dir, 'primary');
  const R = path.join(dir, 'replica');
  const src = path.join(dir, 'src');
  const receiver = new Receiver();
  let primary: Keepd;
  let replica: Keepd | undefined;
  let replicaToken: string;
  let env: Record<string, string | undefined>;
  let rid: string;
  const replicaCfg = path.join(dir, 'replica.yaml');
  const serveReplica = () => serveWith(R, ['--config', replicaCfg], { KEEP_UPSTREAM_TOKEN: replicaToken });
  const hook = (key: string) => receiver.accepted('/hook', key);

  beforeAll(async () => {
    await receiver.listen();
    fs.mkdirSync(src);
    fs.writeFileSync(path.join(src, 'a.txt'), 'first');
    const primaryCfg = path.join(dir, 'primary.yaml');
    fs.writeFileSync(
      primaryCfg,
      `watchdog: { interval: 300ms, hysteresis: 2 }\nsources: [{ match: db, rpo: 4s }]\nalerts:\n  retry_initial: 200ms\n  receivers: [{ name: hook, type: webhook, url: "http://127.0.0.1:${receiver.port}/hook" }]\n`,
    );
    await keepdInit(P);
    const agent = (await createToken(P, 'agent', { sources: ['db'] })).token;
    replicaToken = (await createToken(P, 'replica')).token;
    primary = await serveWith(P, ['--config', primaryCfg]);
    env = agentEnv(primary, agent, PASSWORD);
    await keepJson(['init', '--kdf-cost', '12'], env);
    await keepJson(['backup', src, '--source', 'db'], env);
    // the replica is created by a one-shot sync, then served pulling every 400 ms on its schedule
    await syncOk(R, primary.url, replicaToken);
    rid = fs.readFileSync(path.join(R, 'replica-id'), 'utf8').trim();
    fs.writeFileSync(replicaCfg, `watchdog: { interval: 300ms, hysteresis: 2 }\nmaintenance:\n  sync:\n    schedule: { every: 400ms }\n    upstreams: ["${primary.url}"]\n`);
    replica = await serveReplica();
  });
  afterAll(async () => {
    await killAllServing();
    await receiver.close();
  });

  it('the scheduled sync pulls new snapshots, records each run and audits it', async () => {
    const s = await keepJson(['backup', src, '--source', 'db'], env);
    await until('the replica holding the new snapshot', () => snapshotFiles(R).includes(s.snapshot));
    const st = await until('a recorded scheduled sync', async () => {
      const x = await status(R);
      return x.watchdog.maintenance.some((r: any) => r.task === 'sync' && r.outcome === 'success' && r.result.snapshots_synced >= 1) ? x : undefined;
    });
    expect(st.watchdog.states.find((c: any) => c.kind === 'maintenance' && c.name === 'sync')?.state).toBe('ok');
    const audited = await keepdJson(['audit', 'list', '--data', R, '--event', 'sync', '--json']);
    expect(audited.some((r: any) => r.fields.scheduled === true && r.fields.snapshots_synced >= 1)).toBe(true);
    // its report reached the primary: no lag there
    await until('the replica ok on the primary', async () => (await replicaState(P, rid)) === 'ok');
  });

  it('stopped, it goes lagging on the primary past the RPO (one webhook); back on schedule, it resolves (one webhook)', async () => {
    await replica!.stop();
    replica = undefined;
    fs.writeFileSync(path.join(src, 'a.txt'), 'second');
    const s = await keepJson(['backup', src, '--source', 'db'], env);
    expect(snapshotFiles(R)).not.toContain(s.snapshot);
    await until('the replica lagging on the primary', async () => (await replicaState(P, rid)) === 'lagging', 40_000);
    const page = await scrape(primary.metricsPort!);
    const lag = Number(page.split('\n').find((l) => l.startsWith(`keep_replica_lag_seconds{replica="${rid}"}`))?.split(' ')[1]);
    expect(lag).toBeGreaterThan(4);
    // the lag is how long the oldest snapshot it lacks has been waiting: it grows with no further backup
    const lagNow = async () => (await status(P)).replicas.find((r: any) => r.replica_id === rid).lag_s as number;
    const first = await lagNow();
    expect(first).toBeGreaterThan(4);
    await new Promise((r) => setTimeout(r, 1500));
    expect(await lagNow()).toBeGreaterThan(first + 1);
    const [fired] = await until('the lag alert at the receiver', () => (hook(`replica/${rid}:1`).length ? hook(`replica/${rid}:1`) : undefined));
    expect(fired.body).toMatchObject({ id: `replica/${rid}`, kind: 'replica', condition: 'lagging', state: 'firing', severity: 1 });
    expect(fired.body.detail.lag_s).toBeGreaterThan(4);

    replica = await serveReplica();
    await until('the replica holding the snapshot again', () => snapshotFiles(R).includes(s.snapshot), 40_000);
    await until('the replica ok on the primary', async () => (await replicaState(P, rid)) === 'ok', 40_000);
    const [resolved] = await until('the resolve at the receiver', () => (hook(`replica/${rid}:2`).length ? hook(`replica/${rid}:2`) : undefined));
    expect(resolved.body).toMatchObject({ id: `replica/${rid}`, state: 'resolved', condition: 'ok', from: 'lagging' });
    expect(metricValue(await scrape(primary.metricsPort!), 'keep_replica_lag_seconds')).toBe(0);
    // once per transition: nothing else about this replica was sent
    await new Promise((r) => setTimeout(r, 1500));
    expect(receiver.seen.filter((r) => r.body.id === `replica/${rid}` && r.status === 200).map((r) => r.key)).toEqual([`replica/${rid}:1`, `replica/${rid}:2`]);
  });
});

describe('a scheduled sync that fails raises the maintenance alert', () => {
  afterAll(killAllServing);

  it('an unreachable upstream: each run recorded failed, maintenance/sync critical and alerted', async () => {
    const dir = tmp.make('keep-replica-sync-fail-');
    const data = path.join(dir, 'data');
    const cfg = path.join(dir, 'keepd.yaml');
    await keepdInit(data);
    fs.writeFileSync(cfg, `watchdog: { interval: 300ms, hysteresis: 1 }\nmaintenance:\n  sync:\n    schedule: { every: 300ms }\n    upstreams: ["grpc://127.0.0.1:1"]\n`);
    await serveWith(data, ['--config', cfg], { KEEP_UPSTREAM_TOKEN: 'unused-token' });
    const st = await until('a failed sync run', async () => {
      const x = await status(data);
      return x.watchdog.states.find((c: any) => c.kind === 'maintenance' && c.name === 'sync')?.state === 'failed' ? x : undefined;
    });
    expect(st.watchdog.maintenance.find((r: any) => r.task === 'sync')).toMatchObject({ outcome: 'failure', error: expect.stringContaining('grpc://127.0.0.1:1') });
    const alerts = await until('the maintenance alert', async () => {
      const a = await keepdJson(['alerts', '--data', data, '--json']);
      return a.active.some((x: any) => x.id === 'maintenance/sync') ? a : undefined;
    });
    expect(alerts.active.find((x: any) => x.id === 'maintenance/sync')).toMatchObject({ condition: 'failed', severity: 2 });
  });

  it('check-config names the line of a bad upstream and of an empty list', async () => {
    const cfg = path.join(tmp.make('keep-replica-sync-cfg-'), 'keepd.yaml');
    fs.writeFileSync(cfg, `maintenance:\n  sync:\n    schedule: { every: 1h }\n    upstreams:\n      - "http://primary:7420"\n`);
    const bad = await runKeepd(['check-config', '--config', cfg]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/keepd\.yaml:5: maintenance\.sync\.upstreams\[0\]: must be grpc:\/\/HOST:PORT or grpcs:\/\/HOST:PORT/);
    fs.writeFileSync(cfg, `maintenance:\n  sync:\n    schedule: { cron: "0 * * * *" }\n    upstreams: []\n`);
    const empty = await runKeepd(['check-config', '--config', cfg]);
    expect(empty.code).toBe(2);
    expect(empty.stderr).toMatch(/keepd\.yaml:4: maintenance\.sync\.upstreams: must name at least one upstream/);
    fs.writeFileSync(cfg, `maintenance:\n  sync:\n    schedule: { every: 15m }\n    upstreams: ["grpcs://primary.example:7420"]\n`);
    expect(await keepdJson(['check-config', '--config', cfg])).toMatchObject({ ok: true, maintenance: ['sync'] });
  });

  it('keepd serve refuses --upstream together with a sync schedule', async () => {
    const dir = tmp.make('keep-replica-sync-both-');
    const data = path.join(dir, 'data');
    const cfg = path.join(dir, 'keepd.yaml');
    await keepdInit(data);
    fs.writeFileSync(cfg, `maintenance:\n  sync:\n    schedule: { every: 1h }\n    upstreams: ["grpc://127.0.0.1:1"]\n`);
    const r = await runKeepd(['serve', '--data', data, '--listen', '127.0.0.1:0', '--config', cfg, '--upstream', 'grpc://127.0.0.1:2']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--upstream .* or maintenance\.sync/);
  });
});
