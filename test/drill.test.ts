/**
 * Restore drills (`keep drill`) over gRPC with a real keepd: a written drill
 * restores into a marked scratch directory (removing a killed drill's stale
 * one, never a foreign one), verifies content and metadata and removes its
 * scratch; a --no-write drill verifies without writing; both are reported
 * (ReportDrills), audited and shown by `keepd status`. A damaged pack makes
 * the drill fail: it is reported, the watchdog's drill condition turns
 * failed and the alert fires.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, agentConfig, killAllAgents, writeSecret } from './agent-harness.js';
import { flipByte, packBlobs, packFiles, tempDirs } from './helpers.js';
import { createToken, Keepd, keepdInit, keepdJson, keepJson, killAllKeepd, RawClient, runKeep, runKeepd, startKeepd, Token, waitFor, wire } from './keepd-harness.js';

const PASSWORD = 'drill passphrase';
const tmp = tempDirs();

const CONFIG = `watchdog:
  interval: 300ms
  hysteresis: 2
sources:
  - match: files
    drill: { interval: 1h, rto: 1h }
`;

async function status(data: string): Promise<any> {
  return keepdJson(['status', '--data', data, '--json']);
}

async function drillState(data: string): Promise<string | undefined> {
  return ((await status(data)).watchdog.states as { kind: string; name: string; state: string }[]).find((s) => s.kind === 'drill' && s.name === 'files')?.state;
}

describe('keep drill', () => {
  const dir = tmp.make('keep-drill-');
  const data = path.join(dir, 'data');
  const src = path.join(dir, 'src');
  const scratchParent = path.join(dir, 'scratch');
  const cfg = path.join(dir, 'keepd.yaml');
  let keepd: Keepd;
  let token: Token;
  const env = () => ({ KEEP_REPO: keepd.url, KEEP_TOKEN: token.token, KEEP_PASSWORD: PASSWORD });

  beforeAll(async () => {
    fs.mkdirSync(path.join(src, 'sub'), { recursive: true });
    for (let i = 0; i < 20; i++) fs.writeFileSync(path.join(src, `f${i}.txt`), `drilled file ${i}\n`.repeat(100 + i));
    fs.writeFileSync(path.join(src, 'sub', 'big.bin'), Buffer.alloc(3 * 1024 * 1024, 7).map((b, i) => (b + i * 31) & 0xff));
    fs.chmodSync(path.join(src, 'f1.txt'), 0o640);
    fs.symlinkSync('f0.txt', path.join(src, 'link'));
    fs.writeFileSync(cfg, CONFIG);
    await keepdInit(data);
    token = await createToken(data, 'agent', { sources: ['files'] });
    keepd = await startKeepd(data, { metrics: true, args: ['--config', cfg] });
    await keepJson(['init', '--kdf-cost', '12'], env());
    await keepJson(['backup', src, '--source', 'files'], env());
  });
  afterAll(async () => {
    killAllAgents();
    await killAllKeepd();
  });

  it('restores into a scratch directory, verifies, reports, and cleans up (also a killed drill\'s leftovers)', async () => {
    // a killed drill's scratch directory (marked, its pid gone) and a foreign one without our marker
    const stale = path.join(scratchParent, 'keep-drill-999999-dead');
    const foreign = path.join(scratchParent, 'keep-drill-not-ours');
    fs.mkdirSync(path.join(stale, 'restore'), { recursive: true });
    fs.writeFileSync(path.join(stale, '.keep-drill'), JSON.stringify({ pid: 999999 }));
    fs.mkdirSync(foreign, { recursive: true });
    const r = await runKeep(['drill', 'latest', '--source', 'files', '--target', scratchParent, '--json'], env());
    expect(r.code, r.stderr).toBe(0);
    const d = JSON.parse(r.stdout.trim().split('\n').at(-1)!);
    expect(d).toMatchObject({ message_type: 'drill', source: 'files', kind: 'files', mode: 'write', result: 'success', files: 21, verify_failures: 0, stale_removed: 1 });
    expect(d.files_verified).toBe(21); // regular files read back (the symlink is checked as metadata)
    expect(d.entries_checked).toBeGreaterThanOrEqual(23); // 20 + sub + big.bin + link, and the directories leading to src
    expect(d.bytes).toBeGreaterThan(3 * 1024 * 1024);
    expect(d.reported).toMatch(/^reported to keepd/);
    expect(d.duration_ms).toBeGreaterThanOrEqual(d.setup_ms);
    // its own scratch directory and the stale one are gone; the foreign one stays
    expect(fs.readdirSync(scratchParent)).toEqual(['keep-drill-not-ours']);
  });

  it('--no-write reads, decrypts and verifies without writing, and says so', async () => {
    const r = await runKeep(['drill', '--source', 'files', '--no-write'], env());
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('read-only drill (--no-write');
    expect(r.stdout).toMatch(/OK\n/);
    expect(r.stdout).toMatch(/files\/s/);
  });

  it('keepd keeps the drills as events: status and the audit log show them', async () => {
    const s = await status(data);
    const row = (s.drills as any[]).find((x) => x.source === 'files');
    expect(row).toMatchObject({ drills: 2, failures: 0, last_result: 'success', last_mode: 'read' });
    expect(row.drill_s).toBeGreaterThan(0);
    expect(row.rto_estimate_s).toBeGreaterThan(0);
    const audit = await keepdJson(['audit', 'list', '--data', data, '--event', 'drill.done', '--json']);
    expect(audit.map((a: any) => a.fields.mode)).toEqual(['write', 'read']);
    expect(audit.every((a: any) => a.source === 'files' && a.token === token.id)).toBe(true);
    await waitFor(async () => (await drillState(data)) === 'ok', 30_000, 200);
  });

  it('an agent drill job runs drills on its schedule into its own scratch directory, never the live paths', async () => {
    const before = ((await status(data)).drills as any[]).find((x) => x.source === 'files').drills;
    const jobScratch = path.join(dir, 'job-scratch');
    const live = fs.readdirSync(src).sort();
    const cfgFile = path.join(dir, 'agent.yaml');
    const jobs = `  - type: drill\n    name: drill-files\n    source: files\n    target: ${jobScratch}\n    schedule: { every: 2s }\n`;
    fs.writeFileSync(cfgFile, agentConfig([`location: ${keepd.url}`, `token_file: ${writeSecret(dir, 'token', token.token)}`, `password_file: ${writeSecret(dir, 'password', PASSWORD)}`], jobs));
    const agent = new Agent(['--config', cfgFile, '--state-dir', path.join(dir, 'state')]);
    await agent.waitFor((l) => l.job === 'drill-files' && l.msg === 'run succeeded', 2, 90_000);
    agent.child.kill('SIGTERM');
    expect((await agent.exited).code).toBe(0);
    const row = ((await status(data)).drills as any[]).find((x) => x.source === 'files');
    expect(row.drills).toBeGreaterThanOrEqual(before + 2);
    expect(row.last_result).toBe('success');
    expect(fs.readdirSync(jobScratch)).toEqual([]);
    expect(fs.readdirSync(src).sort()).toEqual(live);
    // a drill is not a backup run: the source's run summary is untouched
    expect(((await status(data)).runs as any[]).find((x) => x.source === 'files')).toBeUndefined();
  });

  it('an agent token may report drills of its own sources only', async () => {
    const other = await createToken(data, 'agent', { sources: ['elsewhere'] });
    const { grpc, protobuf, proto } = await wire();
    const req = protobuf.toBinary(
      proto.ReportDrillsRequestSchema,
      protobuf.create(proto.ReportDrillsRequestSchema, {
        drills: [{ id: 'cd'.repeat(16), source: 'files', snapshot: 'ab'.repeat(16), kind: 'files', mode: 'read', result: 'success', startMs: 1n, endMs: 2n, durationMs: 1n }],
      }),
    );
    const r = await new RawClient(grpc, `127.0.0.1:${keepd.port}`, other.token).unary('ReportDrills', req);
    expect(r.ok).toBe(false);
    expect(r.ok === false && r.code).toBe(grpc.status.PERMISSION_DENIED);
  });

  it('a damaged pack fails the drill: reported, the drill condition turns failed, the alert fires', async () => {
    const blobs = packFiles(data).flatMap(packBlobs).filter((b) => b.type === 0);
    const victim = blobs.sort((a, b) => b.length - a.length)[0];
    flipByte(victim.pack, victim.offset + Math.floor(victim.length / 2));
    const before = ((await status(data)).drills as any[]).find((x) => x.source === 'files');
    const r = await runKeep(['drill', 'latest', '--source', 'files', '--target', scratchParent, '--json'], env());
    expect(r.code).toBe(4);
    const d = JSON.parse(r.stdout.trim().split('\n').at(-1)!);
    expect(d).toMatchObject({ result: 'failure', reported: expect.stringMatching(/^reported to keepd/) });
    expect(d.error_class).toMatch(/^[A-Z_]+$/);
    expect(fs.readdirSync(scratchParent)).toEqual(['keep-drill-not-ours']);
    const row = ((await status(data)).drills as any[]).find((x) => x.source === 'files');
    expect(row).toMatchObject({ drills: before.drills + 1, failures: 1, last_result: 'failure' });
    await waitFor(async () => (await drillState(data)) === 'failed', 30_000, 200);
    await waitFor(async () => {
      const a = await keepdJson(['alerts', '--data', data, '--json']);
      return (a.active as any[]).some((x) => x.kind === 'drill' && x.subject === 'files' && x.condition === 'failed');
    }, 30_000, 200);
  });
});

describe('keep drill from a replica', () => {
  const dir = tmp.make('keep-drill-replica-');
  const P = path.join(dir, 'primary');
  const R = path.join(dir, 'replica');
  const src = path.join(dir, 'src');
  let primary: Keepd;
  let replica: Keepd;
  let agentToken: Token;
  afterAll(killAllKeepd);

  beforeAll(async () => {
    fs.mkdirSync(src);
    for (let i = 0; i < 5; i++) fs.writeFileSync(path.join(src, `r${i}.txt`), `replicated ${i}\n`.repeat(500));
    await keepdInit(P);
    agentToken = await createToken(P, 'agent', { sources: ['files'] });
    const replicaToken = await createToken(P, 'replica');
    primary = await startKeepd(P);
    const env = { KEEP_REPO: primary.url, KEEP_TOKEN: agentToken.token, KEEP_PASSWORD: PASSWORD };
    await keepJson(['init', '--kdf-cost', '12'], env);
    await keepJson(['backup', src, '--source', 'files'], env);
    const sync = await runKeepd(['sync', '--data', R, '--from', primary.url, '--json'], { env: { KEEP_TOKEN: replicaToken.token }, timeoutMs: 60_000 });
    expect(sync.code, sync.stderr).toBe(0);
    replica = await startKeepd(R, { args: ['--upstream', primary.url, '--sync-interval', '3600'], env: { KEEP_UPSTREAM_TOKEN: replicaToken.token } });
  });

  it('restores and verifies from the replica with the agent token; the read-only replica keeps no drill history', async () => {
    const r = await runKeep(['drill', '--source', 'files', '--json'], { KEEP_REPO: replica.url, KEEP_TOKEN: agentToken.token, KEEP_PASSWORD: PASSWORD });
    expect(r.code, r.stderr).toBe(0);
    const d = JSON.parse(r.stdout.trim().split('\n').at(-1)!);
    expect(d).toMatchObject({ result: 'success', mode: 'write', files: 5, files_verified: 5, verify_failures: 0 });
    expect(d.reported).toMatch(/^not reported: /);
  });
});
