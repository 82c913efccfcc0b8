/**
 * Run reports (ReportRuns): a real keepd and a real `keep agent run` with a
 * files job that succeeds and a command job that exits 3. keepd learns of
 * both, with its own receive time and the failure's class; the error text
 * reaches keepd only sealed; a token for another source (and a replica
 * token) may not report; reports made while keepd was down arrive once it
 * is back.
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, agentConfig, killAllAgents, writeSecret } from './agent-harness.js';
import { Repository, RunReport } from '@keep/core';
import { RUN_REPORTS_KEPT, RunReportStore } from '@keep/server/dist/run-reports.js';
import { keepJson, tempDirs } from './helpers.js';
import { createToken, filesContaining, Keepd, keepdInit, keepdJson, killAllKeepd, reportRuns, runKeepd, startKeepd, Token, wire } from './keepd-harness.js';

const PASSWORD = 'run reports passphrase';
/** in the failing command's stderr, so in its error text: it must never reach keepd's data in plaintext */
const SECRET_TEXT = 'cannot read /srv/payroll-2026-marker.csv';
const tmp = tempDirs();

const JOBS = (src: string) => `  - type: files
    name: files
    paths: [${src}]
    schedule: { every: 2s }
  - type: command
    name: broken
    argv: [sh, -c, "echo '${SECRET_TEXT}' >&2; exit 3"]
    stdin_name: broken.sql
    schedule: { every: 2s }
`;

interface SourceRuns {
  source: string;
  last_result: string;
  last_run: string;
  consecutive_failures: number;
  last_failure: string | null;
  last_error_class: string | null;
  runs_success: number;
  runs_failure: number;
}

async function runsOf(data: string): Promise<Map<string, SourceRuns>> {
  const s = await keepdJson(['status', '--data', data, '--json']);
  return new Map((s.runs as SourceRuns[]).map((r) => [r.source, r]));
}

/** A loopback port nothing listens on now (keepd restarts on it: the agent's config names it). */
async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise((r) => srv.close(r));
  return port;
}

describe('keep agent run reports its runs to keepd', () => {
  const dir = tmp.make('keep-run-reports-');
  const src = path.join(dir, 'src');
  const data = path.join(dir, 'data');
  const state = path.join(dir, 'state');
  const cfg = path.join(dir, 'agent.yaml');
  let port: number;
  let keepd: Keepd;
  let other: Token;
  let replica: Token;
  afterAll(async () => {
    killAllAgents();
    await killAllKeepd();
  });

  beforeAll(async () => {
    fs.mkdirSync(src);
    fs.writeFileSync(path.join(src, 'a.txt'), 'reported');
    await keepdInit(data);
    const token = await createToken(data, 'agent', { sources: ['files', 'broken'] });
    other = await createToken(data, 'agent', { sources: ['elsewhere'] });
    replica = await createToken(data, 'replica');
    port = await freePort();
    keepd = await startKeepd(data, { args: ['--listen', `127.0.0.1:${port}`] });
    await keepJson(['init', '--kdf-cost', '12'], { env: { KEEP_REPO: keepd.url, KEEP_TOKEN: token.token, KEEP_PASSWORD: PASSWORD } });
    const tokenFile = writeSecret(dir, 'token', token.token);
    const pw = writeSecret(dir, 'password', PASSWORD);
    fs.writeFileSync(cfg, agentConfig([`location: ${keepd.url}`, `token_file: ${tokenFile}`, `password_file: ${pw}`], JOBS(src)));
  });

  it('keepd records a success and a failure with its class and its own time; the error text only sealed', async () => {
    const before = Date.now();
    const agent = new Agent(['--config', cfg, '--state-dir', state]);
    await agent.waitFor((l) => l.job === 'files' && l.msg === 'run succeeded');
    await agent.waitFor((l) => l.job === 'broken' && l.msg === 'run failed', 2);
    agent.child.kill('SIGTERM');
    expect((await agent.exited).code).toBe(0);

    const runs = await runsOf(data);
    const broken = runs.get('broken')!;
    expect(broken).toMatchObject({ last_result: 'failure', last_error_class: 'exit 3', runs_success: 0 });
    expect(broken.consecutive_failures).toBeGreaterThanOrEqual(2);
    expect(broken.runs_failure).toBe(broken.consecutive_failures);
    // keepd's clock, within the test's window
    const failedAt = Date.parse(broken.last_failure!);
    expect(failedAt).toBeGreaterThanOrEqual(before - 1000);
    expect(failedAt).toBeLessThanOrEqual(Date.now());
    expect(runs.get('files')).toMatchObject({ last_result: 'success', consecutive_failures: 0, last_failure: null });
    // the agent's log has the text; keepd's data directory never does
    expect(agent.runs('broken', 'failed')[0].error).toContain(SECRET_TEXT);
    expect(filesContaining(data, SECRET_TEXT)).toEqual([]);
    expect(filesContaining(data, 'payroll')).toEqual([]);
    const text = await runKeepd(['status', '--data', data]);
    expect(text.stdout).toMatch(new RegExp(`broken +last failure .*${broken.consecutive_failures} consecutive failure\\(s\\), last ${broken.last_failure} \\(exit 3\\)`));
    // nothing left waiting
    expect(JSON.parse(fs.readFileSync(path.join(state, 'run-reports-pending.json'), 'utf8')).pending).toEqual([]);
  });

  it('refuses a report from an agent token for another source, and from a replica token', async () => {
    const { grpc } = await wire();
    for (const t of [other, replica]) {
      const r = await reportRuns(`127.0.0.1:${port}`, t.token, [{ id: 'ab'.repeat(16), source: 'broken', kind: 'command', result: 'success' }]);
      expect(r.ok).toBe(false);
      expect(r.ok === false && r.code).toBe(grpc.status.PERMISSION_DENIED);
    }
    // nothing recorded from them
    expect((await runsOf(data)).get('broken')!.runs_success).toBe(0);
  });

  it('keeps the reports made while keepd is down and delivers them once it is back', async () => {
    const agent = new Agent(['--config', cfg, '--state-dir', state]);
    await agent.waitFor((l) => l.msg === 'runs reported to keepd');
    const failuresBefore = (await runsOf(data)).get('broken')!.runs_failure;
    await keepd.stop();
    const stoppedAt = Date.now();
    // each run fails now (no keepd), and its report cannot be delivered
    await agent.waitFor((l) => l.msg === 'reporting runs to keepd failed; they go with the next report' && (l.pending as number) >= 2, 1);
    const pending = JSON.parse(fs.readFileSync(path.join(state, 'run-reports-pending.json'), 'utf8')).pending as { source: string; result: string; error_class?: string; sealed_detail?: string }[];
    expect(pending.length).toBeGreaterThanOrEqual(2);
    expect(JSON.stringify(pending)).not.toContain(SECRET_TEXT);
    const queuedBroken = pending.filter((p) => p.source === 'broken').length;

    keepd = await startKeepd(data, { args: ['--listen', `127.0.0.1:${port}`] });
    const delivered = agent.lines.length;
    await agent.waitFor((l) => agent.lines.indexOf(l) >= delivered && l.msg === 'runs reported to keepd' && (l.reports as number) >= 2);
    agent.child.kill('SIGTERM');
    expect((await agent.exited).code).toBe(0);
    const broken = (await runsOf(data)).get('broken')!;
    expect(broken.runs_failure).toBeGreaterThanOrEqual(failuresBefore + queuedBroken);
    // received after the restart: keepd's time, not the agent's
    expect(Date.parse(broken.last_run)).toBeGreaterThan(stoppedAt);
  });
});

describe("keepd's store of run reports", () => {
  it('keeps the last reports per source, counts every one, and takes a resent report once', async () => {
    const data = path.join(tmp.make('keep-run-store-'), 'data');
    await keepdInit(data);
    let now = Date.parse('2026-03-01T00:00:00Z');
    const repo = await Repository.open(data);
    try {
      const store = new RunReportStore(repo, { now: () => now });
      const report = (i: number, result: RunReport['result']): RunReport => ({ id: i.toString(16).padStart(32, '0'), source: 'db', job: 'dump', kind: 'command', reason: 'scheduled', attempt: 1, start_ms: i + 1, end_ms: i + 2, result, files: 1, bytes: 10, warnings: 0, ...(result === 'failure' ? { error_class: 'exit 1' } : {}) });
      const all = Array.from({ length: RUN_REPORTS_KEPT + 5 }, (_, i) => report(i, i < RUN_REPORTS_KEPT ? 'success' : 'failure'));
      await store.record(all.slice(0, 500));
      now += 60_000;
      await store.record(all.slice(400)); // 100 resent
      const [s] = store.list();
      expect(s).toMatchObject({ source: 'db', runs_success: RUN_REPORTS_KEPT, runs_failure: 5, consecutive_failures: 5, last_result: 'failure', last_error_class: 'exit 1', last_failure_ms: now });
      const kept = store.recent('db');
      expect(kept.length).toBe(RUN_REPORTS_KEPT);
      expect(kept[0].id).toBe(all[5].id);
      expect(kept.at(-1)).toMatchObject({ id: all.at(-1)!.id, received_ms: now });
      // a success ends the streak
      await store.record([report(RUN_REPORTS_KEPT + 5, 'success')]);
      expect(store.list()[0]).toMatchObject({ consecutive_failures: 0, last_result: 'success', runs_failure: 5 });
    } finally {
      await repo.close();
    }
  });
});
