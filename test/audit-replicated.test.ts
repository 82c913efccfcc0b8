/**
 * The audit head replicated (issue 17 item 6): a real primary keepd and a
 * replica pulling from it (`keepd sync --from`) over gRPC. After each pull
 * the replica asks the primary for its audit head (GetAuditHead) and keeps
 * it in its own state.mdb. Then copies of the primary's data directory are
 * tampered with the way someone holding the primary would: the log cut
 * below a replicated checkpoint, or an old record edited and the whole
 * chain recomputed, and state.mdb's head checkpoint rewritten to match. The
 * primary's own verify is fooled; `keepd audit verify --against REPLICA`
 * exits 4 naming the replica's checkpoint.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Repository, STATE_TABLES } from '@keep/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDirs } from './helpers.js';
import { agentEnv, createToken, Keepd, keepdInit, keepdJson, keepJson, killAllKeepd, runKeepd, startKeepd, waitFor } from './keepd-harness.js';

const PASSWORD = 'replicated audit passphrase';

interface Stored {
  seq: number;
  hash: string;
  time: string;
  received: string;
  upstream: string;
}

const segment = (data: string) => {
  const dir = path.join(data, 'audit');
  const [name] = fs.readdirSync(dir).sort();
  return path.join(dir, name);
};
const lines = (data: string) => fs.readFileSync(segment(data), 'utf8').trimEnd().split('\n');

/** Rewrite state.mdb's head checkpoint as someone covering their tracks would. */
async function setHead(data: string, line: string): Promise<void> {
  const { seq, hash } = JSON.parse(line);
  const repo = await Repository.open(data);
  try {
    repo.database<{ seq: number; hash: string }>(STATE_TABLES.audit).putSync('head', { seq, hash });
  } finally {
    await repo.close();
  }
}

describe('audit checkpoints replicated to a replica', () => {
  const tmp = tempDirs();
  const dir = tmp.make('keep-audit-repl-');
  const primary = path.join(dir, 'primary');
  const replica = path.join(dir, 'replica');
  const src = path.join(dir, 'src');
  let keepd: Keepd;
  let stored: Stored[] = [];

  const sync = async (token: string) => {
    const s = await runKeepd(['sync', '--data', replica, '--from', keepd.url], { env: { KEEP_TOKEN: token } });
    expect(s.code, s.stderr).toBe(0);
  };
  const readStored = async (): Promise<Stored[]> => {
    const repo = await Repository.open(replica);
    try {
      return [...repo.database<Stored>(STATE_TABLES.auditReplicated).getRange()].map((e) => e.value);
    } finally {
      await repo.close();
    }
  };
  const tampered = (name: string) => {
    const copy = path.join(dir, name);
    fs.cpSync(primary, copy, { recursive: true });
    return copy;
  };

  beforeAll(async () => {
    await keepdInit(primary);
    const admin = await createToken(primary, 'admin');
    const rt = await createToken(primary, 'replica');
    keepd = await startKeepd(primary);
    const env = agentEnv(keepd, admin.token, PASSWORD);
    await keepJson(['init', '--kdf-cost', '12'], env);
    fs.mkdirSync(src);
    fs.writeFileSync(path.join(src, 'a.txt'), 'one');
    await keepJson(['backup', src, '--source', 'web'], env);
    await sync(rt.token);
    fs.writeFileSync(path.join(src, 'a.txt'), 'two, later');
    await keepJson(['backup', src, '--source', 'web'], env);
    await sync(rt.token);
    stored = await readStored();
    await keepd.stop();
  }, 180_000);
  afterAll(killAllKeepd);

  it('the replica keeps each head it received, with the primary time', async () => {
    expect(stored.length).toBe(2);
    expect(stored[0].seq).toBeLessThan(stored[1].seq);
    const byLine = new Map(lines(primary).map((l) => [JSON.parse(l).seq as number, JSON.parse(l).hash as string]));
    for (const c of stored) {
      expect(byLine.get(c.seq)).toBe(c.hash);
      expect(c.upstream).toBe(keepd.url);
      expect(Math.abs(Date.parse(c.time) - Date.now())).toBeLessThan(600_000);
    }
    const v = await runKeepd(['audit', 'verify', '--data', primary, '--against', replica, '--json']);
    expect(v.code, v.stdout + v.stderr).toBe(0);
    expect(JSON.parse(v.stdout).replicated).toMatchObject({ checkpoints: 2, checked: 2, newest: { seq: stored[1].seq } });
  });

  it('a log cut below a replicated checkpoint, with state.mdb rewritten to match, fails against the replica', async () => {
    const copy = tampered('truncated');
    const keep = lines(copy).slice(0, stored[0].seq - 1);
    fs.writeFileSync(segment(copy), keep.join('\n') + '\n');
    await setHead(copy, keep.at(-1)!);
    // the primary's own checks see nothing wrong
    expect((await runKeepd(['audit', 'verify', '--data', copy])).code).toBe(0);
    const r = await runKeepd(['audit', 'verify', '--data', copy, '--against', replica, '--json']);
    expect(r.code, r.stdout + r.stderr).toBe(4);
    expect(JSON.parse(r.stdout).damage).toMatchObject({ seq: stored[0].seq, reason: expect.stringMatching(new RegExp(`replica's checkpoint seq ${stored[0].seq} .*truncated`)) });
    const human = await runKeepd(['audit', 'verify', '--data', copy, '--against', replica]);
    expect(human.stderr).toContain(`checkpoint seq ${stored[0].seq}`);
  });

  it('an old record edited and the chain recomputed, state.mdb too, fails against the replica', async () => {
    const copy = tampered('rewritten');
    let prev = '';
    const out = lines(copy).map((line, i) => {
      const o = JSON.parse(line);
      if (i === 1) o.peer = '10.9.9.9';
      if (i > 0) o.prev = prev;
      delete o.hash;
      o.hash = crypto.createHash('sha256').update(JSON.stringify(o)).digest('hex');
      prev = o.hash;
      return JSON.stringify(o);
    });
    fs.writeFileSync(segment(copy), out.join('\n') + '\n');
    await setHead(copy, out.at(-1)!);
    expect((await runKeepd(['audit', 'verify', '--data', copy])).code).toBe(0);
    const r = await runKeepd(['audit', 'verify', '--data', copy, '--against', replica, '--json']);
    expect(r.code, r.stdout + r.stderr).toBe(4);
    expect(JSON.parse(r.stdout).damage).toMatchObject({ seq: stored[0].seq, reason: expect.stringMatching(/replica's checkpoint .*rewritten/) });
  });

  it('--against refuses a directory without replicated checkpoints', async () => {
    const r = await runKeepd(['audit', 'verify', '--data', primary, '--against', primary]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/holds no audit checkpoint/);
  });
});

describe('a serving replica (keepd serve --upstream) keeps the head after each pull', () => {
  const tmp = tempDirs();
  afterAll(killAllKeepd);

  it('a commit on the primary brings a newer checkpoint to the replica', async () => {
    const dir = tmp.make('keep-audit-follow-');
    const primary = path.join(dir, 'primary');
    const replica = path.join(dir, 'replica');
    const src = path.join(dir, 'src');
    await keepdInit(primary);
    const admin = await createToken(primary, 'admin');
    const rt = await createToken(primary, 'replica');
    const keepd = await startKeepd(primary);
    const env = agentEnv(keepd, admin.token, PASSWORD);
    await keepJson(['init', '--kdf-cost', '12'], env);
    fs.mkdirSync(src);
    fs.writeFileSync(path.join(src, 'a.txt'), 'followed');
    await keepJson(['backup', src, '--source', 'web'], env);
    // the replica is made by a one-shot pull, then serves following the primary
    expect((await runKeepd(['sync', '--data', replica, '--from', keepd.url], { env: { KEEP_TOKEN: rt.token } })).code).toBe(0);
    await startKeepd(replica, { args: ['--upstream', keepd.url, '--sync-interval', '60'], env: { KEEP_UPSTREAM_TOKEN: rt.token } });
    fs.writeFileSync(path.join(src, 'a.txt'), 'followed, again');
    await keepJson(['backup', src, '--source', 'web'], env);
    // the commit's record is in the primary's log when backup returns; the announced commit makes the replica pull
    const commit = (await keepdJson(['audit', 'list', '--data', primary, '--event', 'session.commit'])).at(-1);
    let report: any;
    await waitFor(async () => {
      const v = await runKeepd(['audit', 'verify', '--data', primary, '--against', replica, '--json']);
      report = v.code === 0 ? JSON.parse(v.stdout) : undefined;
      return (report?.replicated?.newest?.seq ?? 0) >= commit.seq;
    }, 120_000, 500);
    expect(report.replicated.checked).toBe(report.replicated.checkpoints);
    expect(report.replicated.newest.upstream).toBe(keepd.url);
  });
});
