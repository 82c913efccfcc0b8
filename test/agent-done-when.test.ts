/**
 * Issue 16's "Done when", end to end: a real keepd and a real `keep agent
 * run` with a files job every 3 s, a command job that always fails, a command
 * job that is SIGKILLed mid-run (it waits while a marker file exists), and a
 * postgres job against a real PostgreSQL whose archive_command goes through
 * the agent. The agent is SIGKILLed and restarted; then keepd holds the files
 * snapshots (restored and compared) and the killed job's snapshot (retried at
 * start as 'interrupted'), the failing job is a failure in keepd's run
 * summaries with nothing committed, and WAL archiving kept up. Without
 * PostgreSQL the postgres job is left out (the reason is printed).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, agentConfig, killAllAgents } from './agent-harness.js';
import { tempDirs } from './helpers.js';
import { createToken, Keepd, keepdInit, keepdJson, killAllKeepd, runKeep, startKeepd } from './keepd-harness.js';
import { Cluster, own, SKIP, startPrimaryArchivingThroughAgent, waitUntil } from './pg-cluster.js';

if (SKIP) console.warn(`agent-done-when: the postgres job is left out: ${SKIP}`);
const WITH_PG = !SKIP;
const PASSWORD = 'done when passphrase';

interface StateFileData {
  jobs: Record<string, { runs: { reason: string; result: string; snapshot?: string }[]; running?: { reason: string } }>;
}

describe('issue 16 done-when: a resident agent with three kinds of job, SIGKILLed mid-job and restarted', () => {
  const tmp = tempDirs();
  let dir: string;
  let src: string;
  let marker: string;
  let stateDir: string;
  let socket: string;
  let cfg: string;
  let keepd: Keepd;
  let env: Record<string, string>;
  let primary: Cluster | undefined;

  beforeAll(async () => {
    dir = tmp.make('keep-done-when-');
    fs.chmodSync(dir, 0o755); // the agent runs as the postgres user (archive_command must reach its socket)
    src = path.join(dir, 'src');
    fs.mkdirSync(path.join(src, 'sub'), { recursive: true });
    fs.writeFileSync(path.join(src, 'big.bin'), crypto.randomBytes(4 << 20));
    fs.writeFileSync(path.join(src, 'sub', 'note.txt'), 'kept by the agent\n');
    marker = path.join(dir, 'hold-slow');
    fs.writeFileSync(marker, '');

    const data = path.join(dir, 'keepd');
    await keepdInit(data);
    const token = await createToken(data, 'agent', { sources: ['files', 'broken', 'slow', 'db'] });
    keepd = await startKeepd(data);
    const secrets = path.join(dir, 'secrets');
    fs.mkdirSync(secrets, { mode: 0o700 });
    fs.writeFileSync(path.join(secrets, 'password'), `${PASSWORD}\n`, { mode: 0o600 });
    fs.writeFileSync(path.join(secrets, 'token'), `${token.token}\n`, { mode: 0o600 });
    env = { KEEP_REPO: keepd.url, KEEP_PASSWORD_FILE: path.join(secrets, 'password'), KEEP_TOKEN_FILE: path.join(secrets, 'token') };
    const init = await runKeep(['init', '--kdf-cost', '12', '--json'], env);
    expect(init.code, init.stderr).toBe(0);

    stateDir = path.join(dir, 'agent', 'state');
    socket = path.join(stateDir, 'agent.sock');
    fs.mkdirSync(path.join(dir, 'agent'));
    let pgJob = '';
    if (WITH_PG) {
      fs.mkdirSync(path.join(dir, 'pg', 'sock'), { recursive: true });
      own(path.join(dir, 'pg'));
      primary = new Cluster(path.join(dir, 'pg', 'data'), path.join(dir, 'pg', 'sock'), 54361, path.join(dir, 'pg', 'pg.log'));
      await startPrimaryArchivingThroughAgent(primary, env, socket);
      pgJob = `  - type: postgres
    name: db
    pgdata: ${primary.data}
    connection: { socket: ${primary.sock}, port: ${primary.port}, user: postgres }
    checkpoint: fast
    schedule: { every: 1h }
`;
    }
    cfg = path.join(dir, 'agent', 'agent.yaml');
    fs.writeFileSync(
      cfg,
      agentConfig(
        [`location: ${keepd.url}`, `token_file: ${env.KEEP_TOKEN_FILE}`, `password_file: ${env.KEEP_PASSWORD_FILE}`],
        `  - type: files
    name: files
    paths: [${src}]
    schedule: { every: 3s }
  - type: command
    name: broken
    argv: [sh, -c, "echo partial; exit 3"]
    stdin_name: broken.out
    schedule: { every: 3s }
  - type: command
    name: slow
    argv: [sh, -c, "while [ -e ${marker} ]; do sleep 0.1; done; echo slow dump content"]
    stdin_name: slow.out
    schedule: { every: 1h }
${pgJob}`,
      ),
    );
    // the agent reads all of it as the postgres user when PostgreSQL runs
    for (const p of [secrets, src, marker, path.join(dir, 'agent')]) own(p);
  }, 120_000);

  afterAll(async () => {
    fs.rmSync(marker, { force: true });
    killAllAgents();
    await primary?.stop('immediate').catch(() => undefined);
    await killAllKeepd();
  });

  const readState = (): StateFileData => JSON.parse(fs.readFileSync(path.join(stateDir, 'agent-state.json'), 'utf8'));
  const agentPid = async (): Promise<number> => JSON.parse((await runKeep(['agent', 'status', '--socket', socket, '--json'], env)).stdout).pid as number;
  const archiver = async (c: Cluster) => {
    const [count, failed, last] = (await c.sql("SELECT archived_count, failed_count, coalesce(last_archived_wal, '') FROM pg_stat_archiver")).split('|');
    return { count: Number(count), failed: Number(failed), last };
  };

  it('runs, survives a SIGKILL mid-job, retries the killed run, reports the failure and keeps WAL archived', async () => {
    // ---- first life: every job runs; slow is held mid-run
    const first = new Agent(['--config', cfg, '--state-dir', stateDir], { asPostgres: WITH_PG });
    await first.waitFor((l) => l.job === 'files' && l.msg === 'run succeeded', 2);
    await first.waitFor((l) => l.job === 'broken' && l.msg === 'run failed');
    await first.waitFor((l) => l.job === 'slow' && l.msg === 'run started');
    if (WITH_PG) {
      const [db] = await first.waitFor((l) => l.job === 'db' && (l.msg === 'run succeeded' || l.msg === 'run failed'), 1, 90_000);
      expect(db.msg, JSON.stringify(db)).toBe('run succeeded');
    }
    expect(readState().jobs.slow.running).toMatchObject({ reason: 'first' });
    expect(first.lines.some((l) => l.job === 'slow' && l.msg === 'run succeeded')).toBe(false);

    // ---- SIGKILL the agent itself (not runuser) while slow runs
    process.kill(await agentPid(), 'SIGKILL');
    await first.exited;
    fs.rmSync(marker); // the orphaned `sh` ends, and the retried run does not wait
    expect(readState().jobs.slow.running).toMatchObject({ reason: 'first' });
    const walBefore = primary ? await archiver(primary) : undefined;

    // ---- second life: the killed run is retried at start
    const second = new Agent(['--config', cfg, '--state-dir', stateDir], { asPostgres: WITH_PG });
    const [retried] = await second.waitFor((l) => l.job === 'slow' && (l.msg === 'run succeeded' || l.msg === 'run failed'));
    expect(retried).toMatchObject({ msg: 'run succeeded', reason: 'interrupted' });
    await second.waitFor((l) => l.job === 'files' && l.msg === 'run succeeded', 2);
    await second.waitFor((l) => l.job === 'broken' && l.msg === 'run failed');
    expect(second.lines.some((l) => l.job === 'db' && l.msg === 'run started')).toBe(false); // its 1 h is not up

    // ---- WAL archiving kept up through the restarted agent
    if (primary) {
      await primary.sql('CREATE TABLE IF NOT EXISTS t (id int)');
      let seg = '';
      for (let i = 0; i < 3; i++) {
        await primary.sql(`INSERT INTO t VALUES (${i})`);
        seg = await primary.sql('SELECT pg_walfile_name(pg_switch_wal())');
      }
      await waitUntil(`${seg} archived`, async () => (await archiver(primary!)).last >= seg, 30_000, () => primary!.logText());
      const after = await archiver(primary);
      expect(after.failed).toBe(0);
      expect(after.count).toBeGreaterThanOrEqual(walBefore!.count + 3);
      const statusDir = path.join(primary.data, 'pg_wal', 'archive_status');
      const stale = fs.readdirSync(statusDir).filter((f) => f.endsWith('.ready') && Date.now() - fs.statSync(path.join(statusDir, f)).mtimeMs > 5_000);
      expect(stale).toEqual([]);
      expect(second.lines.filter((l) => l.msg === 'wal archived').map((l) => l.wal)).toContain(seg);
    }

    const reported = second.lines.length;
    await second.waitFor((l) => second.lines.indexOf(l) >= reported && l.msg === 'runs reported to keepd');
    process.kill(await agentPid(), 'SIGTERM');
    expect((await second.exited).code).toBe(0);

    // ---- the local state file: the killed run retried as 'interrupted'
    const state = readState();
    expect(state.jobs.slow.running).toBeUndefined();
    expect(state.jobs.slow.runs.map((r) => [r.reason, r.result])).toEqual([['interrupted', 'success']]);

    // ---- keepd's run summaries: broken failed every time, the others succeeded
    const status = await keepdJson(['status', '--data', keepd.data, '--json']);
    const runs = new Map((status.runs as { source: string; last_result: string; runs_success: number; runs_failure: number; consecutive_failures: number; last_error_class: string | null }[]).map((r) => [r.source, r]));
    const broken = runs.get('broken')!;
    expect(broken).toMatchObject({ last_result: 'failure', runs_success: 0, last_error_class: 'exit 3' });
    expect(broken.runs_failure).toBeGreaterThanOrEqual(1);
    expect(broken.consecutive_failures).toBe(broken.runs_failure);
    expect(runs.get('files')).toMatchObject({ last_result: 'success' });
    expect(runs.get('files')!.runs_success).toBeGreaterThanOrEqual(2);
    expect(runs.get('slow')).toMatchObject({ last_result: 'success', runs_success: 1 });
    if (WITH_PG) expect(runs.get('db')).toMatchObject({ last_result: 'success' });

    // ---- keepd's snapshots: nothing for broken; files and slow restore to what was backed up
    const snaps = JSON.parse((await runKeep(['snapshots', '--json'], env)).stdout) as { id: string; source: string; time: string }[];
    expect(snaps.filter((s) => s.source === 'broken')).toEqual([]);
    expect(snaps.filter((s) => s.source === 'files').length).toBeGreaterThanOrEqual(4);
    const slow = snaps.filter((s) => s.source === 'slow');
    expect(slow.map((s) => s.id)).toEqual([state.jobs.slow.runs[0].snapshot]);
    if (WITH_PG) expect(snaps.some((s) => s.source === 'db')).toBe(true);

    const latestFiles = state.jobs.files.runs.findLast((r) => r.result === 'success')!.snapshot!;
    const restored = path.join(dir, 'restored-files');
    const r1 = await runKeep(['restore', latestFiles, '--target', restored, '--json'], env);
    expect(r1.code, r1.stderr).toBe(0);
    const inRestore = (rel: string) => fs.readFileSync(path.join(restored, src, rel));
    expect(inRestore('big.bin').equals(fs.readFileSync(path.join(src, 'big.bin')))).toBe(true);
    expect(inRestore('sub/note.txt').toString()).toBe('kept by the agent\n');

    const restoredSlow = path.join(dir, 'restored-slow');
    const r2 = await runKeep(['restore', slow[0].id, '--target', restoredSlow, '--json'], env);
    expect(r2.code, r2.stderr).toBe(0);
    expect(fs.readFileSync(path.join(restoredSlow, 'slow.out'), 'utf8')).toBe('slow dump content\n');
  }, 150_000);
});
