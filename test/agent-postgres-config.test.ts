/**
 * The agent config's `postgres` job, checked without a PostgreSQL: base
 * backup schedules derived from the tier (the RPO is the WAL's, so the
 * interval bounds replay instead), the connection section, and errors named
 * by file, line and key. The data directory need not exist yet (a config is
 * checked before initdb too).
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { keep, tempDirs } from './helpers.js';

const tmp = tempDirs();

describe('keep agent check-config: postgres jobs', () => {
  const dir = tmp.make('keep-agent-pgcfg-');
  const pw = path.join(dir, 'password');
  fs.writeFileSync(pw, 'a passphrase\n', { mode: 0o600 });
  const pgdata = path.join(dir, 'pgdata-not-yet-created');
  const head = `repository:\n  location: ${dir}/repo\n  password_file: ${pw}\njobs:\n`;

  it('takes a base backup schedule from the tier when none is given', async () => {
    const jobs = ['critical', 'high', 'standard', 'lower'].map((t) => `  - type: postgres\n    name: db-${t}\n    tier: ${t}\n    pgdata: ${pgdata}\n    connection: { socket: /run/postgresql, port: 5432, user: postgres }\n`);
    const f = path.join(dir, 'tiers.yaml');
    fs.writeFileSync(f, head + jobs.join('') + `  - type: postgres\n    name: db\n    source: pg-main\n    pgdata: ${pgdata}\n    checkpoint: spread\n    schedule: { cron: "0 3 * * *" }\n`);
    const r = await keep(['agent', 'check-config', '--config', f, '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).jobs).toEqual([
      { name: 'db-critical', type: 'postgres', source: 'db-critical', tier: 'critical', schedule: 'every 6h' },
      { name: 'db-high', type: 'postgres', source: 'db-high', tier: 'high', schedule: 'every 12h' },
      { name: 'db-standard', type: 'postgres', source: 'db-standard', tier: 'standard', schedule: 'every 24h' },
      { name: 'db-lower', type: 'postgres', source: 'db-lower', tier: 'lower', schedule: 'every 24h' },
      { name: 'db', type: 'postgres', source: 'pg-main', tier: null, schedule: 'cron "0 3 * * *"' },
    ]);
  });

  it('names the line and key of a relative data directory, connection or checkpoint', async () => {
    const f = path.join(dir, 'bad.yaml');
    fs.writeFileSync(
      f,
      head +
        [
          '  - type: postgres', // 5
          '    name: db', // 6
          '    pgdata: relative/data', // 7
          '    checkpoint: slow', // 8
          '    connection:', // 9
          '      host: db.example', // 10
          '      socket: /run/postgresql', // 11
          '      port: fifty', // 12
          '      password: hunter2', // 13
          '',
        ].join('\n'),
    );
    const r = await keep(['agent', 'check-config', '--config', f]);
    expect(r.code).toBe(2);
    // an inline secret is refused before anything else, and never echoed
    expect(r.stderr).toContain(`${f}:13: jobs[0].connection.password: secrets are not written in the config`);
    expect(r.stderr).not.toContain('hunter2');
    fs.writeFileSync(f, fs.readFileSync(f, 'utf8').replace('      password: hunter2\n', ''));
    const s = await keep(['agent', 'check-config', '--config', f]);
    expect(s.code).toBe(2);
    expect(s.stderr).toContain(`${f}:8: jobs[0].checkpoint: must be fast or spread`);
    expect(s.stderr).toContain(`${f}:12: jobs[0].connection.port: must be a port number`);
    fs.writeFileSync(f, fs.readFileSync(f, 'utf8').replace('slow', 'fast').replace('fifty', '5432'));
    const t = await keep(['agent', 'check-config', '--config', f]);
    expect(t.code).toBe(2);
    expect(t.stderr).toContain(`${f}:7: jobs[0].pgdata: must be an absolute path`);
    expect(t.stderr).toContain(`${f}:11: jobs[0].connection.socket: give host or socket, not both`);
  });
});
