/**
 * Alerts with a real keepd (keepd.yaml via --config, RPO 3 s, watchdog every
 * 300 ms) and a real HTTP receiver in this process: a source that stops
 * backing up goes late then missed, and each transition arrives once at a
 * generic webhook, a Slack-compatible one and an Alertmanager-compatible
 * one; a receiver answering 503 gets it later; a receiver whose port is
 * closed while keepd restarts gets the undelivered alert after the restart;
 * a backup resolves it. Exactly once per Idempotency-Key among the
 * requests the receiver accepted (2xx).
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDirs } from './helpers.js';
import { createToken, Keepd, keepdInit, keepdJson, keepJson, killAllKeepd, reportRuns, runKeepd, startKeepd, Token } from './keepd-harness.js';
import { Receiver, until } from './webhook-receiver.js';

const PASSWORD = 'alerts passphrase';
const tmp = tempDirs();

const PATHS = { hook: '/hook', chat: '/slack', am: '/am/api/v2/alerts' } as const;

/** A keepd with `config` (keepd.yaml) whose source db was backed up once: from then on its watchdog runs towards late. */
async function backedUpKeepd(prefix: string, config: string): Promise<{ keepd: Keepd; token: Token }> {
  const dir = tmp.make(prefix);
  const data = path.join(dir, 'data');
  const src = path.join(dir, 'src');
  fs.mkdirSync(src);
  fs.writeFileSync(path.join(src, 'a.txt'), prefix);
  const cfg = path.join(dir, 'keepd.yaml');
  fs.writeFileSync(cfg, config);
  await keepdInit(data);
  const token = await createToken(data, 'agent', { sources: ['db'] });
  const keepd = await startKeepd(data, { args: ['--config', cfg] });
  const env = { KEEP_REPO: keepd.url, KEEP_TOKEN: token.token, KEEP_PASSWORD: PASSWORD };
  await keepJson(['init', '--kdf-cost', '12'], env);
  await keepJson(['backup', src, '--source', 'db'], env);
  return { keepd, token };
}

describe('alerts reach webhooks once per transition, through receiver outages and keepd restarts', () => {
  const dir = tmp.make('keep-alerts-');
  const data = path.join(dir, 'data');
  const src = path.join(dir, 'src');
  const cfg = path.join(dir, 'keepd.yaml');
  const headers = path.join(dir, 'hook-headers');
  const receiver = new Receiver();
  let keepd: Keepd;
  let token: Token;
  const env = () => ({ KEEP_REPO: keepd.url, KEEP_TOKEN: token.token, KEEP_PASSWORD: PASSWORD });
  const backup = () => keepJson(['backup', src, '--source', 'db'], env());
  const alerts = () => keepdJson(['alerts', '--data', data, '--json']);
  const deliveredEverywhere = (key: string) => Object.values(PATHS).every((p) => receiver.accepted(p, key).length > 0);
  const scrape = async () => (await fetch(`http://127.0.0.1:${keepd.metricsPort}/metrics`)).text();
  const active = (text: string) =>
    text
      .split('\n')
      .filter((l) => l.startsWith('keep_alerts_active{'))
      .reduce((n, l) => n + Number(l.split(' ')[1]), 0);

  beforeAll(async () => {
    await receiver.listen();
    // the second transition (late -> missed) meets a receiver outage: set now, since it comes 2 RPOs after
    // the first backup however long the first test takes to check the first one
    receiver.failingKeys.add('source/db:2');
    const base = `http://127.0.0.1:${receiver.port}`;
    fs.mkdirSync(src);
    fs.writeFileSync(path.join(src, 'a.txt'), 'alerted');
    fs.writeFileSync(headers, 'Authorization: Bearer hook-secret\n', { mode: 0o600 });
    fs.writeFileSync(
      cfg,
      `watchdog:
  interval: 300ms
  hysteresis: 2
sources:
  - match: "db*"
    rpo: 3s
alerts:
  repeat_interval: 1h
  retry_initial: 200ms
  retry_max: 1s
  receivers:
    - { name: hook, type: webhook, url: "${base}/hook", headers_file: "${headers}" }
    - { name: chat, type: slack, url: "${base}/slack" }
    - { name: am, type: alertmanager, url: "${base}/am" }
`,
    );
    await keepdInit(data);
    token = await createToken(data, 'agent', { sources: ['db'] });
    keepd = await startKeepd(data, { metrics: true, args: ['--config', cfg] });
    await keepJson(['init', '--kdf-cost', '12'], env());
  });
  afterAll(async () => {
    await killAllKeepd();
    await receiver.close();
  });

  it('a source going late fires once, in each payload shape', async () => {
    await backup();
    await until('the late alert at every receiver', () => deliveredEverywhere('source/db:1'));
    const [generic] = receiver.accepted(PATHS.hook, 'source/db:1');
    expect(generic.auth).toBe('Bearer hook-secret'); // from headers_file
    expect(generic.body).toMatchObject({ id: 'source/db', seq: 1, kind: 'source', subject: 'db', condition: 'late', severity: 1, state: 'firing', from: 'ok', repeat: false });
    expect(Math.abs(generic.body.at_ms - Date.now())).toBeLessThan(30_000);
    expect(receiver.accepted(PATHS.chat, 'source/db:1')[0].body.text).toMatch(/WARNING source db late/);
    const [am] = receiver.accepted(PATHS.am, 'source/db:1')[0].body;
    expect(am.labels).toMatchObject({ alertname: 'KeepSource', subject: 'db' });
    expect(am.annotations.condition).toBe('late');
    expect(am.endsAt).toBeUndefined();
    expect(Date.parse(am.startsAt)).toBe(generic.body.started_ms);
    expect(active(await scrape())).toBe(1);
    const listed = await alerts();
    expect(listed.active).toHaveLength(1);
    expect(listed.active[0]).toMatchObject({ id: 'source/db', state: 'firing' });
  });

  it('a receiver answering 503 gets the missed transition once it is back', async () => {
    const pending = await until('a failed attempt at the missed alert', async () => {
      const a = await alerts();
      const d = a.active[0]?.deliveries.filter((x: any) => x.idempotency_key === 'source/db:2') ?? [];
      return d.length === 3 && d.every((x: any) => x.delivery === 'pending' && x.attempts >= 1) ? d : undefined;
    });
    expect(pending[0].last_error).toBe('HTTP 503');
    expect(receiver.seen.some((r) => r.key === 'source/db:2' && r.status === 503)).toBe(true);
    receiver.failingKeys.delete('source/db:2');
    await until('the missed alert after the outage', () => deliveredEverywhere('source/db:2'));
    expect(receiver.accepted(PATHS.hook, 'source/db:2')[0].body).toMatchObject({ condition: 'missed', severity: 2, from: 'late', state: 'firing' });
  });

  it('an alert raised while the receiver is unreachable and keepd restarts is delivered after the restart; recovery resolves it', async () => {
    const port = receiver.port;
    await receiver.close(); // refused connections from now on
    // from here db is expected hourly, so nothing but this test moves its state (at 3 s, a loaded machine
    // could see it go late again between the backup and the checks below)
    await keepd.stop();
    fs.writeFileSync(cfg, fs.readFileSync(cfg, 'utf8').replace('rpo: 3s', 'rpo: 1h'));
    keepd = await startKeepd(data, { metrics: true, args: ['--config', cfg] });
    await backup(); // missed -> ok: the resolve (under the new policy it may come as soon as keepd starts)
    await until('a refused attempt at the resolve', async () => {
      const a = await alerts();
      const d = a.recent[0]?.deliveries.filter((x: any) => x.idempotency_key === 'source/db:3') ?? [];
      return d.length === 3 && d.every((x: any) => x.delivery === 'pending' && x.attempts >= 1);
    });
    await keepd.stop();
    await receiver.listen(port);
    keepd = await startKeepd(data, { metrics: true, args: ['--config', cfg] });
    await until('the resolve after the restart', () => deliveredEverywhere('source/db:3'));
    expect(receiver.accepted(PATHS.hook, 'source/db:3')[0].body).toMatchObject({ state: 'resolved', condition: 'ok', from: 'missed', severity: 0 });
    const [am] = receiver.accepted(PATHS.am, 'source/db:3')[0].body;
    expect(Date.parse(am.endsAt)).toBeGreaterThanOrEqual(Date.parse(am.startsAt));
    expect(am.labels).toMatchObject({ alertname: 'KeepSource', subject: 'db' });

    const a = await alerts();
    expect(a.active).toEqual([]);
    expect(a.recent[0]).toMatchObject({ id: 'source/db', state: 'resolved', seq: 3 });
    expect(a.recent[0].deliveries.every((d: any) => d.delivery === 'delivered')).toBe(true);
    expect(a.pending_deliveries).toBe(0);
    expect(active(await scrape())).toBe(0);

    // exactly once per transition and receiver among accepted requests, and nothing else sent
    await new Promise((r) => setTimeout(r, 1500));
    for (const p of Object.values(PATHS)) {
      const keys = receiver.seen.filter((r) => r.path === p && r.status === 200).map((r) => r.key);
      expect(keys).toEqual(['source/db:1', 'source/db:2', 'source/db:3']);
    }
    // each transition is audited
    const audited = await keepdJson(['audit', 'list', '--data', data, '--event', 'alert', '--json']);
    expect(audited.map((r: any) => `${r.fields.state}:${r.fields.condition}`)).toEqual(['firing:late', 'firing:missed', 'resolved:ok']);
  });
});

describe('deliveries to each receiver go on independently', () => {
  afterAll(killAllKeepd);

  it('a receiver that never answers does not delay another; each still gets the transition once', async () => {
    const dead = new Receiver();
    const live = new Receiver();
    await dead.listen();
    await live.listen();
    dead.hanging = true;
    try {
      // the hanging receiver sorts first in the outbox: a serial delivery would wait out its 10 s timeout before the other
      await backedUpKeepd('keep-alerts-parallel-', `watchdog: { interval: 300ms, hysteresis: 2 }\nsources: [{ match: db, rpo: 3s }]\nalerts:\n  repeat_interval: 1h\n  retry_initial: 200ms\n  retry_max: 1s\n  receivers:\n    - { name: a-dead, type: webhook, url: "http://127.0.0.1:${dead.port}/hook" }\n    - { name: b-live, type: webhook, url: "http://127.0.0.1:${live.port}/hook" }\n`);
      const [first] = await until('the late alert at the live receiver', () => live.accepted('/hook', 'source/db:1').length && live.accepted('/hook', 'source/db:1'));
      expect(dead.hung.length).toBeGreaterThanOrEqual(1);
      // it arrived while keepd was still waiting on the dead receiver's first request
      expect(dead.hung[0].closedAt ?? Infinity).toBeGreaterThan(first.at);
      dead.hanging = false; // keepd's request times out, and the retry is answered
      await until('the late alert at the revived receiver', () => dead.accepted('/hook', 'source/db:1').length, 60_000);
      await new Promise((r) => setTimeout(r, 1500));
      for (const r of [dead, live]) expect(r.accepted('/hook', 'source/db:1')).toHaveLength(1);
    } finally {
      await dead.close();
      await live.close();
    }
  });
});

describe('alerts configuration and repeats', () => {
  afterAll(killAllKeepd);

  it('check-config names the line of a bad receiver and of a receiver named twice', async () => {
    const cfg = path.join(tmp.make('keep-alerts-cfg-'), 'keepd.yaml');
    fs.writeFileSync(cfg, 'alerts:\n  receivers:\n    - { name: a, type: pager, url: "http://127.0.0.1:1/x" }\n    - { name: a, type: webhook, url: "http://127.0.0.1:1/y" }\n');
    const r = await runKeepd(['check-config', '--config', cfg]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/keepd\.yaml:3: alerts\.receivers\[0\]\.type: must be webhook, slack or alertmanager/);
    fs.writeFileSync(cfg, 'alerts:\n  repeat_interval: 2h\n  receivers:\n    - { name: a, type: webhook, url: "http://127.0.0.1:1/x" }\n    - { name: a, type: slack, url: "http://127.0.0.1:1/y" }\n');
    const twice = await runKeepd(['check-config', '--config', cfg]);
    expect(twice.code).toBe(2);
    expect(twice.stderr).toMatch(/keepd\.yaml:5: alerts\.receivers\[1\]\.name: receiver a is named twice/);
  });

  it('a firing alert is sent again every repeat_interval, each with its own Idempotency-Key', async () => {
    const receiver = new Receiver();
    await receiver.listen();
    try {
      await backedUpKeepd('keep-alerts-repeat-', `watchdog: { interval: 300ms, hysteresis: 2 }\nsources: [{ match: db, rpo: 4s }]\nalerts:\n  repeat_interval: 1s\n  receivers: [{ name: hook, type: webhook, url: "http://127.0.0.1:${receiver.port}/hook" }]\n`);
      const repeat = await until('a repeat', () => receiver.seen.find((r) => r.body.repeat === true));
      expect(repeat.body).toMatchObject({ id: 'source/db', state: 'firing', kind: 'source' });
      expect(receiver.seen[0].body).toMatchObject({ seq: 1, condition: 'late', repeat: false });
      const keys = receiver.seen.map((r) => r.key);
      expect(new Set(keys).size).toBe(keys.length);
      expect(repeat.body.at_ms - receiver.seen[0].body.at_ms).toBeGreaterThanOrEqual(1000);
    } finally {
      await receiver.close();
    }
  });

  it('a failed run an agent reports raises the failing alert once, and a success resolves it', async () => {
    const receiver = new Receiver();
    await receiver.listen();
    try {
      // RPO 1 h: the source stays within it, so only the reported runs move its state
      const { keepd, token } = await backedUpKeepd('keep-alerts-failing-', `watchdog: { interval: 300ms, hysteresis: 2 }\nsources: [{ match: db, rpo: 1h }]\nalerts:\n  repeat_interval: 1h\n  receivers: [{ name: hook, type: webhook, url: "http://127.0.0.1:${receiver.port}/hook" }]\n`);
      const report = (id: string, result: 'success' | 'failure') => reportRuns(`127.0.0.1:${keepd.port}`, token.token, [{ id, source: 'db', result }]);
      expect((await report('f1'.repeat(16), 'failure')).ok).toBe(true);
      const fired = await until('the failing alert', () => receiver.accepted('/hook', 'source/db:1')[0]);
      expect(fired.body).toMatchObject({ id: 'source/db', state: 'firing', condition: 'failing', severity: 2 });
      expect((await report('a1'.repeat(16), 'success')).ok).toBe(true);
      const resolved = await until('the resolve', () => receiver.accepted('/hook', 'source/db:2')[0]);
      expect(resolved.body).toMatchObject({ state: 'resolved', from: 'failing' });
      expect(receiver.seen.filter((r) => r.status === 200).map((r) => r.key)).toEqual(['source/db:1', 'source/db:2']);
    } finally {
      await receiver.close();
    }
  });
});
