/**
 * `keep agent check-config`: a config file's problems each named by file,
 * line and key path; secrets refused inline; loose secret files warned about.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { keep, tempDirs } from './helpers.js';

const tmp = tempDirs();

function write(dir: string, name: string, text: string, mode = 0o600): string {
  const f = path.join(dir, name);
  fs.writeFileSync(f, text, { mode });
  fs.chmodSync(f, mode);
  return f;
}

describe('keep agent check-config', () => {
  const dir = tmp.make('keep-agent-config-');
  const pw = write(dir, 'password', 'a passphrase\n');

  it("accepts the CLI contract's minimal agent.yaml: repository as a string, its files beside it, every and schedule on the job", async () => {
    const token = write(dir, 'token', 'keep_0123_abc\n');
    const f = write(
      dir,
      'minimal.yaml',
      `repository: grpc://127.0.0.1:7420\ntoken_file: ${token}\npassword_file: ${pw}\njobs:\n  - name: www\n    type: files\n    source: web1\n    paths: [/var/www]\n    exclude: ["*.tmp"]\n    every: 15m\n    tier: high\n  - name: db\n    type: command\n    argv: [pg_dump]\n    stdin_name: db.sql\n    schedule: "*/15 * * * *"\n`,
    );
    const r = await keep(['agent', 'check-config', '--config', f, '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).jobs).toEqual([
      { name: 'www', type: 'files', source: 'web1', tier: 'high', schedule: 'every 15m' },
      { name: 'db', type: 'command', source: 'db', tier: null, schedule: 'cron "*/15 * * * *"' },
    ]);
    const twice = write(dir, 'twice.yaml', `repository:\n  location: grpc://127.0.0.1:7420\n  token_file: ${token}\ntoken_file: ${token}\njobs:\n  - name: www\n    type: files\n    paths: [/var/www]\n    every: 15m\n    schedule: { every: 5m }\n  - name: gone\n    type: files\n    paths: [/srv]\n`);
    const bad = await keep(['agent', 'check-config', '--config', twice]);
    expect(bad.code).toBe(2);
    expect(bad.stderr.trim().split('\n')).toEqual([
      `keep: error: ${twice}:4: token_file: given here and in repository: give it once`,
      `keep: error: ${twice}:9: jobs[0].every: give every or schedule, not both`,
    ]);
  });

  it('accepts a valid config and shows each job with its schedule (defaults from the tier RPO)', async () => {
    const f = write(dir, 'good.yaml', `repository:\n  location: ${dir}/repo\n  password_file: ${pw}\njobs:\n  - type: files\n    name: etc\n    paths: [/etc]\n    exclude: ["*.tmp"]\n    exclude_larger_than: 1G\n    tier: high\n  - type: command\n    name: db\n    argv: [pg_dump, app]\n    stdin_name: app.sql\n    schedule: { cron: "*/5 * * * *", jitter: 30s }\n`);
    const r = await keep(['agent', 'check-config', '--config', f, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.ok).toBe(true);
    expect(out.warnings).toEqual([]);
    expect(out.jobs).toEqual([
      { name: 'etc', type: 'files', source: 'etc', tier: 'high', schedule: 'every 5m' },
      { name: 'db', type: 'command', source: 'db', tier: null, schedule: 'cron "*/5 * * * *" (jitter 30s)' },
    ]);
  });

  it('drill jobs: monthly by default, weekly for the critical tier', async () => {
    const f = write(dir, 'drills.yaml', `repository:\n  location: ${dir}/repo\n  password_file: ${pw}\njobs:\n  - type: drill\n    name: drill-etc\n    source: etc\n  - type: drill\n    name: drill-db\n    source: db\n    tier: critical\n    no_write: true\n  - type: drill\n    name: drill-www\n    source: www\n    target: /var/tmp\n    schedule: { every: 1d }\n`);
    const r = await keep(['agent', 'check-config', '--config', f, '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).jobs.map((j: { type: string; source: string; schedule: string }) => [j.type, j.source, j.schedule])).toEqual([
      ['drill', 'etc', 'every 720h'], // 30 days
      ['drill', 'db', 'every 168h'], // 7 days
      ['drill', 'www', 'every 24h'],
    ]);
  });

  it('drill jobs of PostgreSQL sources take SQL checks (and refuse an empty one)', async () => {
    const ok = write(dir, 'pg-drill.yaml', `repository:\n  location: ${dir}/repo\n  password_file: ${pw}\njobs:\n  - type: drill\n    name: drill-pg\n    source: pg\n    database: shop\n    checks: [ "select count(*) > 0 from orders" ]\n`);
    const r = await keep(['agent', 'check-config', '--config', ok, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const bad = write(dir, 'pg-drill-bad.yaml', `repository:\n  location: ${dir}/repo\n  password_file: ${pw}\njobs:\n  - type: drill\n    name: drill-pg\n    source: pg\n    checks: [ "" ]\n`);
    const b = await keep(['agent', 'check-config', '--config', bad, '--json']);
    expect(b.code).toBe(2);
    expect(`${b.stdout}${b.stderr}`).toMatch(/checks/);
  });

  it('names file, line and key path for every error, and exits 2', async () => {
    const f = write(
      dir,
      'agent.yaml',
      [
        'repository:', // 1
        `  location: ${dir}/repo`, // 2
        `  password_file: ${pw}`, // 3
        'jobs:', // 4
        '  - type: files', // 5
        '    name: etc', // 6
        '    paths: [/etc]', // 7
        '    exclud: ["*.tmp"]', // 8
        '  - type: command', // 9
        '    name: db', // 10
        '    argv: [pg_dump]', // 11
        '    stdin_name: db.sql', // 12
        '    schedule:', // 13
        '      every: 15x', // 14
        '  - type: files', // 15
        '    name: www', // 16
        '    paths: [/srv]', // 17
        '    schedule: { cron: "61 * * * *" }', // 18
        '    exclude_larger_than: lots', // 19
        '',
      ].join('\n'),
    );
    const r = await keep(['agent', 'check-config', '--config', f]);
    expect(r.code).toBe(2);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toContain(`keep: error: ${f}:8: jobs[0].exclud: unknown key`);
    expect(lines).toContain(`keep: error: ${f}:14: jobs[1].schedule.every: must be a duration such as 30s, 15m or 1h30m, not "15x"`);
    expect(lines.find((l) => l.includes(`${f}:18: jobs[2].schedule.cron: not a cron expression`))).toBeDefined();
    expect(lines).toContain(`keep: error: ${f}:19: jobs[2].exclude_larger_than: must be a size such as 2048, 500k or 1G`);
    expect(lines).toHaveLength(4);
    const json = await keep(['agent', 'check-config', '--config', f, '--json']);
    expect(json.code).toBe(2);
    expect(JSON.parse(json.stdout).errors).toHaveLength(4);
  });

  it('names a missing key by its parent line, and a YAML syntax error by its line', async () => {
    const missing = write(dir, 'missing.yaml', `repository:\n  password_file: ${pw}\njobs:\n  - type: command\n    name: db\n    argv: [pg_dump]\n`);
    const r = await keep(['agent', 'check-config', '--config', missing]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${missing}:1: repository.location: missing`);
    expect(r.stderr).toContain(`${missing}:4: jobs[0].stdin_name: missing`);
    const lists = write(dir, 'lists.yaml', `repository:\n  location: x\njobs:\n  - type: files\n    name: home\n    paths: [/home]\n    exclude_file:\n      - ${pw}\n      - ${dir}/no-such-list\n`);
    const l = await keep(['agent', 'check-config', '--config', lists]);
    expect(l.code).toBe(2);
    expect(l.stderr.trim()).toBe(`keep: error: ${lists}:9: jobs[0].exclude_file[1]: no file ${dir}/no-such-list`);
    const syntax = write(dir, 'syntax.yaml', 'repository:\n  location: x\njobs: [\n');
    const s = await keep(['agent', 'check-config', '--config', syntax]);
    expect(s.code).toBe(2);
    expect(s.stderr).toMatch(new RegExp(`${syntax}:\\d+: `));
  });

  it('refuses secrets written inline, naming the key, and never echoes them', async () => {
    const f = write(dir, 'inline.yaml', `repository:\n  location: grpc://127.0.0.1:1\n  token: keep_0123_SECRETTOKEN\n  password: hunter2\njobs:\n  - type: files\n    name: etc\n    paths: [/etc]\n`);
    const r = await keep(['agent', 'check-config', '--config', f]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${f}:3: repository.token: secrets are not written in the config: name one with token_file`);
    expect(r.stderr).toContain(`${f}:4: repository.password: secrets are not written in the config: name one with password_file`);
    expect(r.stderr).not.toContain('hunter2');
    expect(r.stderr).not.toContain('SECRETTOKEN');
  });

  it('warns when a referenced secret file is group or world readable; errors when it is missing', async () => {
    const loose = write(dir, 'loose-password', 'x\n', 0o640);
    const f = write(dir, 'loose.yaml', `repository:\n  location: ${dir}/repo\n  password_file: ${loose}\n  token_file: ${dir}/no-such-token\njobs:\n  - type: files\n    name: etc\n    paths: [/etc]\n`);
    const r = await keep(['agent', 'check-config', '--config', f]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${f}:4: repository.token_file: cannot read ${dir}/no-such-token: ENOENT`);
    fs.writeFileSync(f, fs.readFileSync(f, 'utf8').replace(/  token_file: .*\n/, ''));
    const ok = await keep(['agent', 'check-config', '--config', f]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stderr).toContain(`keep: warning: ${f}:3: repository.password_file: ${loose} is readable by its group (mode 640); chmod 600 it`);
  });
});
