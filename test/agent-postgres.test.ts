/**
 * PostgreSQL through the resident agent, against a real PostgreSQL and a
 * real keepd: `keep agent run` (as the postgres user, whose archive_command
 * must reach its 0600 socket) with a postgres job takes the base backup on
 * its schedule, in-process; archive_command is `keep pg wal-push`, which
 * hands each segment to the agent and exits once it is committed. WAL is
 * switched a few times around known commits; `keep pg restore --at` a time
 * between two of them and a second server recovering through wal-fetch
 * find exactly the rows before it. With the agent stopped, wal-push falls
 * back to a direct push and archiving goes on.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, agentConfigYaml, killAllAgents } from './agent-harness.js';
import { tempDirs } from './helpers.js';
import { Keepd, killAllKeepd, runKeep } from './keepd-harness.js';
import { Cluster, keepdForPostgres, own, sleep, SKIP, startPrimaryArchivingThroughAgent, waitUntil } from './pg-cluster.js';

if (SKIP) console.warn(`agent-postgres: SKIPPED: ${SKIP}`);

/** The segments the agent's log says it archived. */
const archived = (a: Agent) => a.lines.filter((l) => l.msg === 'wal archived').map((l) => l.wal as string);

describe.skipIf(Boolean(SKIP))('PostgreSQL through the resident agent (real PostgreSQL, real keepd)', () => {
  const tmp = tempDirs();
  let dir: string;
  let keepd: Keepd;
  let env: Record<string, string>;
  let primary: Cluster;
  let restored: Cluster | undefined;
  let agent: Agent | undefined;
  let socket: string;
  let target = 0;
  const figures: Record<string, string> = {};

  beforeAll(async () => {
    dir = tmp.make('keep-agent-pg-');
    fs.chmodSync(dir, 0o755); // the postgres user must reach its directories below
    const k = await keepdForPostgres(dir, 'agent pg passphrase', ['db']);
    keepd = k.keepd;
    env = k.envFor('db');
    const init = await runKeep(['init', '--kdf-cost', '12', '--json'], env);
    expect(init.code, init.stderr).toBe(0);

    for (const d of ['pg1', 'pg2', 'logs', 'agent']) {
      fs.mkdirSync(path.join(dir, d));
      if (d.startsWith('pg')) fs.mkdirSync(path.join(dir, d, 'sock'));
      own(path.join(dir, d));
    }
    socket = path.join(dir, 'agent', 'state', 'agent.sock');
    primary = new Cluster(path.join(dir, 'pg1', 'data'), path.join(dir, 'pg1', 'sock'), 54341, path.join(dir, 'logs', 'pg1.log'));
    await startPrimaryArchivingThroughAgent(primary, env, socket);

    const cfg = path.join(dir, 'agent', 'agent.yaml');
    fs.writeFileSync(
      cfg,
      agentConfigYaml(
        keepd.url,
        env,
        path.join(dir, 'agent', 'state'),
        `  - type: postgres
    name: db
    tier: high
    pgdata: ${primary.data}
    connection: { socket: ${primary.sock}, port: ${primary.port}, user: postgres }
    checkpoint: fast
    schedule: { every: 1h }
`,
      ),
    );
    own(cfg);
    const check = await runKeep(['agent', 'check-config', '--config', cfg, '--json'], env);
    expect(check.code, check.stderr).toBe(0);
    expect(JSON.parse(check.stdout).jobs).toEqual([{ name: 'db', type: 'postgres', source: 'db', tier: 'high', schedule: 'every 1h' }]);
    agent = new Agent(['--config', cfg], { asPostgres: true }); // archive_command, run as postgres, must reach its 0600 socket
  });

  afterAll(async () => {
    killAllAgents();
    for (const c of [restored, primary]) await c?.stop('immediate').catch(() => undefined);
    await killAllKeepd();
    if (Object.keys(figures).length) console.log(`agent-postgres figures:\n${Object.entries(figures).map(([k, v]) => `  ${k}: ${v}`).join('\n')}`);
  });

  /** Force a segment switch and wait until PostgreSQL reports it archived. */
  async function switchAndArchive(c: Cluster): Promise<string> {
    const seg = await c.sql('SELECT pg_walfile_name(pg_switch_wal())');
    const t0 = Date.now();
    await waitUntil(`${seg} archived`, async () => {
      const [last, failed] = (await c.sql("SELECT coalesce(last_archived_wal, ''), failed_count FROM pg_stat_archiver")).split('|');
      if (Number(failed) > 0) throw new Error(`archive_command failed:\n${c.logText().slice(-3000)}`);
      return last >= seg && !last.endsWith('.history');
    }, 60_000);
    figures[`switch to archived (${seg})`] = `${Date.now() - t0} ms`;
    return seg;
  }

  it('takes the base backup on its schedule, its WAL archived through the agent', async () => {
    const [ok] = await agent!.waitFor((l) => l.job === 'db' && (l.msg === 'run succeeded' || l.msg === 'run failed'), 1, 90_000);
    expect(ok.msg, JSON.stringify(ok)).toBe('run succeeded');
    expect(ok.reason).toBe('first');
    const info = JSON.parse((await runKeep(['pg', 'info', '--source', 'db', '--json'], env)).stdout);
    expect(info.base_backups).toHaveLength(1);
    expect(info.base_backups[0].snapshot).toBe(ok.snapshot);
    // pg_backup_stop waited for archive_command: the backup's own segments went through the agent
    expect(archived(agent!)).toContain(info.base_backups[0].start_wal);
    const status = JSON.parse((await runKeep(['agent', 'status', '--socket', socket, '--json'], env)).stdout);
    expect(status.jobs[0]).toMatchObject({ name: 'db', type: 'postgres', last_run: { result: 'success', snapshot: ok.snapshot } });
  });

  it('archives switched segments through the agent around known commits', async () => {
    await primary.sql('CREATE TABLE rows (id int PRIMARY KEY)');
    const segs: string[] = [];
    for (let id = 1; id <= 6; id++) {
      await primary.sql(`INSERT INTO rows VALUES (${id})`);
      if (id === 4) {
        segs.push(await switchAndArchive(primary));
        await sleep(400);
        target = Date.now();
        await sleep(400);
      }
    }
    segs.push(await switchAndArchive(primary));
    segs.push(await switchAndArchive(primary));
    for (const s of segs) expect(archived(agent!)).toContain(s);
    // a push of a segment already archived is acknowledged by the agent without a second copy
    const statusDir = path.join(primary.data, 'pg_wal', 'archive_status');
    const done = fs.readdirSync(statusDir).filter((f) => /^[0-9A-F]{24}\.done$/.test(f)).sort();
    const again = await runKeep(['pg', 'wal-push', '--source', 'db', '--socket', socket, '--json', path.join(primary.data, 'pg_wal', done[done.length - 1].replace('.done', ''))], {});
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ via: 'agent', already: true, bytes_sent: 0 });

    const info = JSON.parse((await runKeep(['pg', 'info', '--source', 'db', '--json'], env)).stdout);
    expect(info.window.gaps).toEqual([]);
    expect(info.wal.last >= segs[segs.length - 1]).toBe(true);
    expect(Date.parse(info.window.to)).toBeGreaterThan(target);
  });

  it('restores to a time between two commits from what the agent archived', async () => {
    const pgdata = path.join(dir, 'pg2', 'data');
    const r = await runKeep(['pg', 'restore', '--pgdata', pgdata, '--at', new Date(target).toISOString(), '--source', 'db', '--json'], env, { timeoutMs: 120_000 });
    expect(r.code, r.stderr).toBe(0);
    own(pgdata);
    restored = new Cluster(pgdata, path.join(dir, 'pg2', 'sock'), 54342, path.join(dir, 'logs', 'pg2.log'));
    await restored.start();
    await waitUntil('recovery finished', async () => (await restored!.sql('SELECT pg_is_in_recovery()')) === 'f', 90_000, () => restored!.logText());
    expect(restored.logText()).toMatch(/restored log file "[0-9A-F]{24}" from archive/);
    expect(await restored.sql("SELECT string_agg(id::text, ',' ORDER BY id) FROM rows")).toBe('1,2,3,4');
    await restored.stop('immediate');
    restored = undefined;
  });

  it('falls back to a direct push when no agent runs: archiving goes on', async () => {
    const a = agent!;
    const pid = JSON.parse((await runKeep(['agent', 'status', '--socket', socket, '--json'], env)).stdout).pid as number;
    process.kill(pid, 'SIGTERM');
    expect((await a.exited).code).toBe(0);
    expect(fs.existsSync(socket)).toBe(false);
    agent = undefined;
    const before = archived(a).length;
    await primary.sql('INSERT INTO rows VALUES (7)');
    const seg = await switchAndArchive(primary);
    expect(archived(a)).toHaveLength(before);
    const snaps = JSON.parse((await runKeep(['snapshots', '--source', 'db', '--json'], env)).stdout) as { tags: string[] }[];
    expect(snaps.some((s) => s.tags.includes(`wal:${seg}`))).toBe(true);
    // the same segment again, by hand: no agent, so direct, and already there
    const again = await runKeep(['pg', 'wal-push', '--source', 'db', '--socket', socket, '--json', path.join(primary.data, 'pg_wal', seg)], env);
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ via: 'direct', already: true });
  });
});
