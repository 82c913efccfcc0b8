/**
 * A real `keep agent run` (child process) on a real embedded repository and
 * on a real keepd over gRPC: jobs on `every: 2s`, a files job, a command job
 * that succeeds and one that exits 3 (a failure that commits nothing), the
 * state file, the status socket, SIGHUP reloads, SIGTERM, and SIGKILL
 * mid-run followed by a restart that runs the killed run at once.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, agentConfig as config, killAllAgents, writeSecret } from './agent-harness.js';
import { keep, keepJson, tempDirs } from './helpers.js';
import { createToken, Keepd, keepdInit, killAllKeepd, startKeepd } from './keepd-harness.js';

const PASSWORD = 'agent service passphrase';
const tmp = tempDirs();

afterAll(killAllAgents);

/** An embedded repository and a config of one job (YAML under `jobs:`) in `dir`. */
async function oneJobSetup(dir: string, jobYaml: string): Promise<{ env: Record<string, string>; cfg: string; state: string }> {
  const env = { KEEP_REPO: path.join(dir, 'repo'), KEEP_PASSWORD: PASSWORD };
  await keepJson(['init', '--kdf-cost', '12'], { env });
  const pw = writeSecret(dir, 'password', PASSWORD);
  const cfg = path.join(dir, 'agent.yaml');
  fs.writeFileSync(cfg, config([`location: ${env.KEEP_REPO}`, `password_file: ${pw}`], jobYaml));
  return { env, cfg, state: path.join(dir, 'state') };
}

const JOBS = (src: string) => `  - type: files
    name: files
    paths: [${src}]
    exclude: ["*.skip"]
    schedule: { every: 2s }
  - type: command
    name: dump
    argv: [sh, -c, "printf 'dump at %s' $(date +%s%N)"]
    stdin_name: dump.sql
    schedule: { every: 2s }
  - type: command
    name: broken
    argv: [sh, -c, "echo half a dump; echo pg_dump failed >&2; exit 3"]
    stdin_name: broken.sql
    schedule: { every: 2s }
`;

describe('keep agent run on an embedded repository', () => {
  const dir = tmp.make('keep-agent-svc-');
  const src = path.join(dir, 'src');
  const state = path.join(dir, 'state');
  const cfg = path.join(dir, 'agent.yaml');
  let env: Record<string, string>;
  let agent: Agent;

  beforeAll(async () => {
    fs.mkdirSync(src);
    fs.writeFileSync(path.join(src, 'a.txt'), 'first file');
    fs.writeFileSync(path.join(src, 'b.skip'), 'left out');
    const pw = writeSecret(dir, 'password', PASSWORD);
    env = { KEEP_REPO: path.join(dir, 'repo'), KEEP_PASSWORD: PASSWORD };
    await keepJson(['init', '--kdf-cost', '12'], { env });
    fs.writeFileSync(cfg, config([`location: ${env.KEEP_REPO}`, `password_file: ${pw}`], JOBS(src)));
    agent = new Agent(['--config', cfg, '--state-dir', state]);
  });

  it('runs each job on its schedule: files and the good command commit, the failing command commits nothing', async () => {
    await agent.waitFor((l) => l.job === 'files' && l.msg === 'run succeeded', 2);
    await agent.waitFor((l) => l.job === 'dump' && l.msg === 'run succeeded', 2);
    const failed = await agent.waitFor((l) => l.job === 'broken' && l.msg === 'run failed', 2);
    expect(failed[0].error).toBe('sh exited with status 3: pg_dump failed; nothing committed');
    expect(agent.lines.filter((l) => l.msg === 'repository unlocked; agent started')).toHaveLength(1);
    const snaps: { source: string; id: string }[] = await keepJson(['snapshots'], { env });
    const sources = new Set(snaps.map((s) => s.source));
    expect(sources).toEqual(new Set(['files', 'dump']));
    // the files job's exclude applied; the command's stdout stored whole
    const files = snaps.filter((s) => s.source === 'files');
    const ls = await keep(['ls', files[files.length - 1].id, '--json'], { env });
    expect(ls.stdout).toContain('a.txt');
    expect(ls.stdout).not.toContain('b.skip');
    const restored = path.join(dir, 'restored');
    const dumps = snaps.filter((s) => s.source === 'dump');
    const r = await keep(['restore', dumps[0].id, '--target', restored], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(fs.readFileSync(path.join(restored, 'dump.sql'), 'utf8')).toMatch(/^dump at \d+$/);
  });

  it('keeps each run in the state file (atomic JSON, 0600): start, end, result, files, bytes, warnings, error', () => {
    const file = path.join(state, 'agent-state.json');
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    const s = JSON.parse(fs.readFileSync(file, 'utf8'));
    const broken = s.jobs.broken.runs[0];
    expect(broken).toMatchObject({ job: 'broken', result: 'failure', files: 0, bytes: 0, warnings: [] });
    expect(broken.error).toContain('exited with status 3');
    expect(broken.end).toBeGreaterThanOrEqual(broken.start);
    const files = s.jobs.files.runs[0];
    expect(files).toMatchObject({ result: 'success', files: 1, bytes: 'first file'.length, warnings: [] });
    expect(files.snapshot).toMatch(/^[0-9a-f]{32}$/);
    expect(fs.readdirSync(state).filter((f) => f.includes('.tmp'))).toEqual([]);
  });

  it('answers `keep agent status` over a 0600 socket: jobs, last and next runs', async () => {
    const sock = path.join(state, 'agent.sock');
    expect(fs.statSync(sock).isSocket()).toBe(true);
    expect(fs.statSync(sock).mode & 0o777).toBe(0o600);
    const st = await keepJson(['agent', 'status', '--config', cfg, '--state-dir', state]);
    expect(st.pid).toBe(agent.child.pid);
    const byName = Object.fromEntries(st.jobs.map((j: any) => [j.name, j]));
    expect(Object.keys(byName).sort()).toEqual(['broken', 'dump', 'files']);
    expect(byName.broken.last_run).toMatchObject({ result: 'failure' });
    expect(byName.broken.last_success).toBeNull();
    expect(byName.files.last_success).toMatch(/^\d{4}-/);
    for (const j of st.jobs) expect(j.running || typeof j.next_run === 'string').toBe(true);
    const text = await keep(['agent', 'status', '--socket', sock]);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/broken \[command\]: last \S+ failure \(sh exited with status 3/);
  });

  it('reloads the config on SIGHUP and logs what changed; an invalid new config keeps the old one', async () => {
    fs.writeFileSync(cfg, fs.readFileSync(cfg, 'utf8').replace(/  - type: command\n    name: broken[\s\S]*$/, '').replace('name: dump', 'name: dump2'));
    agent.child.kill('SIGHUP');
    const [reloaded] = await agent.waitFor((l) => l.msg === 'config reloaded');
    expect(reloaded).toMatchObject({ added: ['dump2'], removed: ['dump', 'broken'], changed: [], needRestart: [] });
    const mark = agent.lines.length;
    await agent.waitFor((l) => l.job === 'dump2' && l.msg === 'run succeeded');
    fs.appendFileSync(cfg, '    tier: platinum\n');
    agent.child.kill('SIGHUP');
    const [bad] = await agent.waitFor((l) => l.msg.startsWith('reload failed'));
    expect(bad.error).toMatch(/agent\.yaml:\d+: jobs\[1\]\.tier: must be one of critical, high, standard, lower/);
    // the old config still runs: dump2 again, broken never again
    const before = agent.runs('dump2', 'succeeded').length;
    await agent.waitFor((l) => l.job === 'dump2' && l.msg === 'run succeeded', before + 1);
    expect(agent.lines.slice(mark).filter((l) => l.job === 'broken' && l.msg === 'run started')).toEqual([]);
  });

  it('exits 0 on SIGTERM once the running job has finished, and removes its socket', async () => {
    agent.child.kill('SIGTERM');
    const exit = await agent.exited;
    expect(exit, agent.stderr).toEqual({ code: 0, signal: null });
    expect(agent.lines[agent.lines.length - 1].msg).toBe('agent stopped');
    // every run started was finished (none left marked running in the state file)
    const s = JSON.parse(fs.readFileSync(path.join(state, 'agent-state.json'), 'utf8'));
    for (const j of Object.values<any>(s.jobs)) expect(j.running).toBeUndefined();
    expect(fs.existsSync(path.join(state, 'agent.sock'))).toBe(false);
    const st = await keep(['agent', 'status', '--socket', path.join(state, 'agent.sock')]);
    expect(st.code).not.toBe(0);
    expect(st.stderr).toContain('no keep agent is running there');
  });
});

describe('keep agent run against a keepd over gRPC', () => {
  const dir = tmp.make('keep-agent-grpc-');
  const src = path.join(dir, 'src');
  let keepd: Keepd;
  let env: Record<string, string | undefined>;
  let cfg: string;
  afterAll(killAllKeepd);

  beforeAll(async () => {
    fs.mkdirSync(src);
    fs.writeFileSync(path.join(src, 'a.txt'), 'over grpc');
    const data = path.join(dir, 'data');
    await keepdInit(data);
    const token = await createToken(data, 'agent');
    keepd = await startKeepd(data);
    env = { KEEP_REPO: keepd.url, KEEP_TOKEN: token.token, KEEP_PASSWORD: PASSWORD };
    await keepJson(['init', '--kdf-cost', '12'], { env });
    const tokenFile = writeSecret(dir, 'token', token.token);
    const pw = writeSecret(dir, 'password', PASSWORD);
    cfg = path.join(dir, 'agent.yaml');
    fs.writeFileSync(cfg, config([`location: ${keepd.url}`, `token_file: ${tokenFile}`, `password_file: ${pw}`], JOBS(src)));
  });

  it('commits the files and command jobs to keepd, never the failing command, then stops on SIGTERM', async () => {
    const agent = new Agent(['--config', cfg, '--state-dir', path.join(dir, 'state')]);
    await agent.waitFor((l) => l.job === 'files' && l.msg === 'run succeeded', 2);
    await agent.waitFor((l) => l.job === 'dump' && l.msg === 'run succeeded', 2);
    await agent.waitFor((l) => l.job === 'broken' && l.msg === 'run failed', 2);
    agent.child.kill('SIGTERM');
    expect((await agent.exited).code).toBe(0);
    const snaps: { source: string; id: string }[] = await keepJson(['snapshots'], { env });
    const ids = (source: string) => snaps.filter((s) => s.source === source).map((s) => s.id);
    expect(ids('files').sort()).toEqual(agent.runs('files', 'succeeded').map((l) => l.snapshot as string).sort());
    expect(ids('dump').sort()).toEqual(agent.runs('dump', 'succeeded').map((l) => l.snapshot as string).sort());
    expect(ids('broken')).toEqual([]);
    // the log names no secret
    const log = agent.lines.map((l) => JSON.stringify(l)).join('\n');
    expect(log).not.toContain(PASSWORD);
    expect(log).not.toContain(fs.readFileSync(path.join(dir, 'token'), 'utf8').trim());
  });
});

describe('keep agent run stopped during a long job', () => {
  const dir = tmp.make('keep-agent-grace-');

  it('aborts the running job past --grace, commits nothing, records the failure and exits 0', async () => {
    const started = path.join(dir, 'running');
    const { env, cfg, state } = await oneJobSetup(dir, `  - type: command\n    name: long\n    argv: [sh, -c, "echo partial; touch ${started}; exec sleep 60"]\n    stdin_name: long.out\n`);
    const agent = new Agent(['--config', cfg, '--state-dir', state, '--grace', '1s']);
    while (!fs.existsSync(started)) await new Promise((r) => setTimeout(r, 20));
    const t0 = Date.now();
    agent.child.kill('SIGTERM');
    expect((await agent.exited).code).toBe(0);
    expect(Date.now() - t0).toBeLessThan(20_000);
    expect(agent.lines.some((l) => l.msg === 'grace period over: aborting the running job')).toBe(true);
    const [failed] = agent.runs('long', 'failed');
    expect(failed.error).toBe('sh was killed by SIGTERM; nothing committed');
    expect(JSON.parse(fs.readFileSync(path.join(state, 'agent-state.json'), 'utf8')).jobs.long.runs[0]).toMatchObject({ result: 'failure' });
    expect(await keepJson(['snapshots'], { env })).toEqual([]);
  });
});

describe('keep agent run killed mid-run', () => {
  const dir = tmp.make('keep-agent-kill-');

  it('runs the killed run again at once on restart, though its schedule is an hour away', async () => {
    const marker = path.join(dir, 'started-once');
    const started = path.join(dir, 'running');
    // the first run hangs (the test kills the agent in it); a later run finishes at once
    const script = `if [ -e ${marker} ]; then echo second; else touch ${marker} ${started}; exec sleep 20; fi`;
    const { env, cfg, state } = await oneJobSetup(dir, `  - type: command\n    name: slow\n    argv: [sh, -c, "${script}"]\n    stdin_name: slow.out\n    schedule: { every: 1h }\n`);
    const first = new Agent(['--config', cfg, '--state-dir', state]);
    await first.waitFor((l) => l.job === 'slow' && l.msg === 'run started');
    while (!fs.existsSync(started)) await new Promise((r) => setTimeout(r, 20));
    first.child.kill('SIGKILL');
    expect((await first.exited).signal).toBe('SIGKILL');
    expect(JSON.parse(fs.readFileSync(path.join(state, 'agent-state.json'), 'utf8')).jobs.slow.running).toMatchObject({ reason: 'first' });

    const second = new Agent(['--config', cfg, '--state-dir', state]);
    const [ok] = await second.waitFor((l) => l.job === 'slow' && l.msg === 'run succeeded', 1, 30_000);
    expect(ok.reason).toBe('interrupted');
    const st = await keepJson(['agent', 'status', '--state-dir', state, '--config', cfg]);
    expect(st.jobs[0]).toMatchObject({ name: 'slow', running: false, next_reason: 'scheduled' });
    // next: an hour after the retried run
    expect(Date.parse(st.jobs[0].next_run) - Date.parse(st.jobs[0].last_run.start)).toBe(3600_000);
    second.child.kill('SIGTERM');
    expect((await second.exited).code).toBe(0);
    const snaps = await keepJson(['snapshots'], { env });
    expect(snaps.map((s: any) => s.source)).toEqual(['slow']);
  });
});

describe('keep agent run stopped while it starts', () => {
  const dir = tmp.make('keep-agent-early-stop-');
  afterAll(killAllKeepd);

  it('exits 0 on a SIGTERM that lands while it unlocks (keepd not answering), not killed by the signal', async () => {
    const data = path.join(dir, 'data');
    await keepdInit(data);
    const token = await createToken(data, 'agent');
    const keepd = await startKeepd(data);
    await keepJson(['init', '--kdf-cost', '12'], { env: { KEEP_REPO: keepd.url, KEEP_TOKEN: token.token, KEEP_PASSWORD: PASSWORD } });
    const cfg = path.join(dir, 'agent.yaml');
    fs.writeFileSync(cfg, config([`location: ${keepd.url}`, `token_file: ${writeSecret(dir, 'token', token.token)}`, `password_file: ${writeSecret(dir, 'password', PASSWORD)}`], `  - type: command\n    name: dump\n    argv: [echo, x]\n    stdin_name: x\n    schedule: { every: 1h }\n`));
    keepd.child.kill('SIGSTOP'); // the agent's unlock waits on keepd for as long as the test holds it
    try {
      const agent = new Agent(['--config', cfg, '--state-dir', path.join(dir, 'state')]);
      await agent.waitFor((l) => l.msg === 'unlocking the repository');
      agent.child.kill('SIGTERM');
      expect(await agent.exited).toEqual({ code: 0, signal: null });
      expect(agent.lines.map((l) => l.msg)).toContain('stopped while starting');
      expect(agent.lines.map((l) => l.msg)).not.toContain('run started');
    } finally {
      keepd.child.kill('SIGCONT');
    }
  });
});
