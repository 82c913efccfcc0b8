/**
 * Issue 13, items 5 and 9: snapshot records are authenticated by the agent
 * (a MAC under a key keepd does not have), and keepd records commit times on
 * its own clock. Real keepd, real agents, real files; the "attacker" edits
 * keepd's data directory while keepd is stopped (test/snapshot-tamper.ts).
 *
 * - a forged record (newer time, older root), an edited record and a genuine
 *   record re-filed under another id: `keep restore latest` restores the
 *   genuine latest and warns, each one named is refused (exit 4), `keep
 *   check` exits 4 naming each;
 * - keepd's recorded commit time rewritten: moved forward it cannot make an
 *   old snapshot "latest"; moved back beyond the skew bound it is detected;
 * - replication carries the MAC unchanged: the replica's records verify;
 * - an agent whose clock is a year ahead (or an hour behind) is refused at
 *   commit; one 4 minutes ahead is accepted but does not become "latest",
 *   nor keepd status' newest, nor survive `keepd forget --keep-last 1` over a
 *   later snapshot;
 * - an embedded repository: the same forgery detected; a record from before
 *   MACs is used only with --allow-unauthenticated.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jsonError, summaryLine, tempDirs } from './helpers.js';
import { agentEnv, createToken, Keepd, keepdInit, keepdJson, keepJson, killAllKeepd, runKeep, startKeepd } from './keepd-harness.js';
import { newId, readRecord, removeRecord, SnapshotRecord, writeRecord } from './snapshot-tamper.js';
import { syncOk } from './sync-util.js';

const PASSWORD = 'authenticated records';
const YEAR_MS = 365 * 86_400_000;

/** Restore `ref` and return the content of data.txt, or the failed run. */
async function restoreContent(env: Record<string, string | undefined>, ref: string, target: string, extra: string[] = []) {
  const r = await runKeep(['restore', ref, '--target', target, ...extra], env);
  if (r.code !== 0) return { r, content: undefined };
  const file = findFile(target, 'data.txt');
  return { r, content: file ? fs.readFileSync(file, 'utf8') : undefined };
}

function findFile(dir: string, name: string): string | undefined {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) {
      const f = findFile(p, name);
      if (f) return f;
    } else if (e.name === name) return p;
  }
  return undefined;
}

describe('snapshot records through keepd: forged, edited, re-filed, rewritten commit times', () => {
  const tmp = tempDirs();
  let dir: string;
  let data: string;
  let keepd: Keepd;
  let token: string;
  let replicaToken: string;
  const env = (extra: Record<string, string> = {}) => agentEnv(keepd, token, PASSWORD, extra);
  const src = () => path.join(dir, 'src');
  const ids: string[] = [];
  let n = 0;
  const target = () => path.join(dir, `restore-${n++}`);

  async function backup(content: string, extra: Record<string, string> = {}, source = 'files') {
    fs.mkdirSync(src(), { recursive: true });
    fs.writeFileSync(path.join(src(), 'data.txt'), content);
    return runKeep(['backup', src(), '--source', source, '--json'], env(extra));
  }
  async function restartAfter(edit: () => Promise<void>) {
    expect(await keepd.stop()).toEqual({ code: 0, signal: null });
    await edit();
    keepd = await startKeepd(data);
  }

  beforeAll(async () => {
    dir = tmp.make('keep-snapshot-auth-');
    data = path.join(dir, 'data');
    await keepdInit(data);
    token = (await createToken(data, 'agent', { sources: ['files', 'clock'] })).token;
    replicaToken = (await createToken(data, 'replica')).token;
    keepd = await startKeepd(data);
    await keepJson(['init', '--kdf-cost', '12'], env());
    for (const v of ['v1', 'v2', 'v3', 'v4']) {
      const r = await backup(v);
      expect(r.code, r.stderr).toBe(0);
      ids.push(summaryLine(r).snapshot);
    }
  }, 120_000);
  afterAll(killAllKeepd);

  let originals: SnapshotRecord[] = [];
  const forgedId = newId(1);
  const replayId = newId(2);

  it('a forged, an edited and a re-filed record: restore latest takes the genuine latest, each named is refused, check exits 4 naming each', async () => {
    originals = ids.map((id) => readRecord(data, id));
    const [s1, s2] = originals;
    const soon = new Date(Date.now() + 1000).toISOString();
    await restartAfter(async () => {
      // The forgery: an older tree under a newer time, no key needed.
      fs.writeFileSync(path.join(data, 'snapshots', `${forgedId}.json`), JSON.stringify({ ...s1, id: forgedId, time: soon, server_time: soon }) + '\n');
      // A genuine record with one field changed, in the file and in keepd's LMDB cache.
      await writeRecord(data, { ...s2, tags: ['edited'] });
      // A genuine record re-filed under another id, unchanged otherwise.
      fs.writeFileSync(path.join(data, 'snapshots', `${replayId}.json`), JSON.stringify({ ...s1, id: replayId }) + '\n');
    });

    const latest = await restoreContent(env(), 'latest', target());
    expect(latest.r.code, latest.r.stderr).toBe(0);
    expect(latest.content).toBe('v4');
    expect(latest.r.stderr).toMatch(new RegExp(`warning: skipping snapshot ${forgedId.slice(0, 8)}.*MAC does not match`));

    for (const id of [forgedId, ids[1], replayId]) {
      const named = await restoreContent(env(), id, target());
      expect(named.r.code, named.r.stderr).toBe(4);
      expect(named.r.stderr).toMatch(new RegExp(`^keep: error: snapshot ${id.slice(0, 8)} .*failed authentication`));
    }

    const check = await runKeep(['check'], env());
    expect(check.code, check.stdout + check.stderr).toBe(4);
    for (const id of [forgedId, ids[1], replayId]) expect(check.stdout).toMatch(new RegExp(`error: snapshot ${id} .*failed authentication`));
    for (const id of [ids[0], ids[2], ids[3]]) expect(check.stdout).not.toContain(id);

    const list = await keepJson(['snapshots', '--source', 'files'], env());
    const auth = Object.fromEntries(list.map((s: any) => [s.id, s.auth]));
    expect(auth).toEqual({ [ids[0]]: 'authentic', [ids[1]]: 'forged', [ids[2]]: 'authentic', [ids[3]]: 'authentic', [forgedId]: 'forged', [replayId]: 'forged' });
  }, 180_000);

  it("keepd's recorded commit time: moved forward it cannot make an old snapshot latest; moved back past the bound it is detected", async () => {
    const [s1, s2, , s4] = originals;
    await restartAfter(async () => {
      for (const id of [forgedId, replayId]) await removeRecord(data, id);
      await writeRecord(data, s2);
      await writeRecord(data, { ...s1, server_time: new Date(Date.now() + 86_400_000).toISOString() });
    });
    let latest = await restoreContent(env(), 'latest', target());
    expect(latest.r.code, latest.r.stderr).toBe(0);
    expect(latest.content).toBe('v4');
    expect(latest.r.stderr).toBe('');

    // The genuine latest's commit time moved an hour before its own time: keepd never records that.
    await restartAfter(async () => {
      await writeRecord(data, s1);
      await writeRecord(data, { ...s4, server_time: new Date(Date.parse(s4.time) - 3_600_000).toISOString() });
    });
    latest = await restoreContent(env(), 'latest', target());
    expect(latest.r.code, latest.r.stderr).toBe(0);
    expect(latest.r.stderr).toMatch(new RegExp(`warning: skipping snapshot ${ids[3].slice(0, 8)}.*rewritten`));
    const check = await runKeep(['check'], env());
    expect(check.code).toBe(4);
    expect(check.stdout).toMatch(new RegExp(`error: snapshot ${ids[3]} .*recorded commit time .* before its own time`));

    await restartAfter(() => writeRecord(data, s4));
    const clean = await runKeep(['check'], env());
    expect(clean.code, clean.stdout + clean.stderr).toBe(0);
  }, 180_000);

  it('replication carries each MAC unchanged: the replica verifies every record and restores latest', async () => {
    const R = path.join(dir, 'replica');
    await syncOk(R, keepd.url, replicaToken);
    for (const id of ids) expect(readRecord(R, id).mac).toBe(readRecord(data, id).mac);
    for (const id of ids) expect(readRecord(R, id).server_time).toBe(readRecord(data, id).server_time);
    const local = { KEEP_REPO: R, KEEP_PASSWORD: PASSWORD };
    const list = await keepJson(['snapshots'], local);
    expect(list.map((s: any) => s.auth)).toEqual(['authentic', 'authentic', 'authentic', 'authentic']);
    const latest = await restoreContent(local, 'latest', target());
    expect(latest.content).toBe('v4');
  }, 120_000);

  it('an agent a year ahead, or an hour behind, is refused at commit; 4 minutes ahead is accepted but keepd orders by its own clock', async () => {
    const ahead = await backup('c0', { KEEP_CLOCK_OFFSET_MS: String(YEAR_MS) }, 'clock');
    expect(ahead.code, ahead.stderr).toBe(2);
    // (under --json the error is restic's exit_error message)
    expect(jsonError(ahead)).toMatch(/^snapshot refused: your clock is 315\d{5} s ahead of the repository server's/);
    const behind = await backup('c0', { KEEP_CLOCK_OFFSET_MS: String(-3_600_000) }, 'clock');
    expect(behind.code, behind.stderr).toBe(2);
    expect(behind.stderr).toMatch(/your clock is 3[56]\d\d s behind/);
    expect((await keepJson(['snapshots', '--source', 'clock'], env())).length).toBe(0);

    // Within the bound: accepted. Its own time is 4 minutes in the future; keepd's time says it came first.
    const early = await backup('c1', { KEEP_CLOCK_OFFSET_MS: String(4 * 60_000) }, 'clock');
    expect(early.code, early.stderr).toBe(0);
    const c1 = summaryLine(early).snapshot;
    const later = await backup('c2', {}, 'clock');
    expect(later.code, later.stderr).toBe(0);
    const c2 = summaryLine(later).snapshot;
    expect(Date.parse(readRecord(data, c1).time)).toBeGreaterThan(Date.parse(readRecord(data, c2).time));

    const latest = await restoreContent(env(), 'latest', target(), ['--source', 'clock']);
    expect(latest.content).toBe('c2');
    const st = await keepdJson(['status', '--data', data]);
    const clock = st.sources.find((s: any) => s.source === 'clock');
    expect(clock.last_snapshot).toBe(c2);
    expect(clock.age_s).toBeGreaterThanOrEqual(0);
    const f = await keepdJson(['forget', '--data', data, '--source', 'clock', '--keep-last', '1']);
    expect(f.groups[0].removed).toEqual([c1]);
  }, 180_000);
});

describe('snapshot records in an embedded repository', () => {
  const tmp = tempDirs();
  let dir: string;
  let repo: string;
  let env: Record<string, string>;
  let n = 0;
  const target = () => path.join(dir, `restore-${n++}`);

  beforeAll(async () => {
    dir = tmp.make('keep-snapshot-auth-local-');
    repo = path.join(dir, 'repo');
    env = { KEEP_REPO: repo, KEEP_PASSWORD: PASSWORD };
    await keepJson(['init', '--kdf-cost', '12'], env);
  });

  it('a forged record is skipped and reported; a record from before MACs needs --allow-unauthenticated', async () => {
    const ids: string[] = [];
    for (const v of ['v1', 'v2']) {
      fs.mkdirSync(path.join(dir, 'src'), { recursive: true });
      fs.writeFileSync(path.join(dir, 'src', 'data.txt'), v);
      ids.push((await keepJson(['backup', path.join(dir, 'src'), '--source', 'files'], env)).snapshot);
    }
    const s1 = readRecord(repo, ids[0]);
    expect(s1.mac).toMatch(/^[0-9a-f]{64}$/);
    expect(Date.parse(s1.server_time)).toBeGreaterThan(0);
    const forged = newId(3);
    const soon = new Date(Date.now() + 1000).toISOString();
    fs.writeFileSync(path.join(repo, 'snapshots', `${forged}.json`), JSON.stringify({ ...s1, id: forged, time: soon, server_time: soon }) + '\n');

    const latest = await restoreContent(env, 'latest', target());
    expect(latest.r.code, latest.r.stderr).toBe(0);
    expect(latest.content).toBe('v2');
    const check = await runKeep(['check'], env);
    expect(check.code).toBe(4);
    expect(check.stdout).toContain(`error: snapshot ${forged}`);

    // Without its MAC the forgery is no better: it is newer than the source's first authenticated record.
    const { mac: _mac, server_time: _st, ...bare } = { ...s1, id: forged, time: soon };
    await writeRecord(repo, bare);
    const named = await restoreContent(env, forged, target(), ['--allow-unauthenticated']);
    expect(named.r.code).toBe(4);
    expect(named.r.stderr).toMatch(/no MAC but is newer than source files's first authenticated snapshot/);
    await removeRecord(repo, forged);

    // A record written before MACs (older than every authenticated one): listed as such, used only when allowed.
    const legacy = newId(4);
    const { mac: _m, server_time: _s, ...old } = { ...s1, id: legacy, time: new Date(Date.parse(s1.time) - 86_400_000).toISOString() };
    await writeRecord(repo, old);
    const list = await keepJson(['snapshots'], env);
    expect(list.map((s: any) => [s.id, s.auth])).toEqual([
      [legacy, 'unauthenticated'],
      [ids[0], 'authentic'],
      [ids[1], 'authentic'],
    ]);
    const refused = await restoreContent(env, legacy, target());
    expect(refused.r.code).toBe(2);
    expect(refused.r.stderr).toMatch(/has no MAC .*--allow-unauthenticated/);
    const allowed = await restoreContent(env, legacy, target(), ['--allow-unauthenticated']);
    expect(allowed.r.code, allowed.r.stderr).toBe(0);
    expect(allowed.content).toBe('v1');
    const ok = await runKeep(['check'], env);
    expect(ok.code, ok.stdout + ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/1 snapshot\(s\) without a MAC/);
  }, 120_000);
});
