/**
 * Issue 17 item 6: keepd's tamper-evident audit log. A real keepd over gRPC
 * with real agents backs up, restores and forgets; keepd's shell creates and
 * revokes a token. Each event is in DIR/audit with the token id, the peer
 * address and keepd's time, and no file name, passphrase or token secret is
 * anywhere in the audit files. Then copies of the data directory are
 * tampered with (a record edited, deleted, reordered, cut off, the chain
 * rewritten after an edit) and `keepd audit verify` exits 4 naming the first
 * bad seq each time; list filters; retention removes a whole old segment
 * and the rest still verifies.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDirs } from './helpers.js';
import { agentEnv, allFiles, createToken, Keepd, keepdInit, keepdJson, keepJson, killAllKeepd, runKeep, runKeepd, startKeepd, Token, tokenSecret } from './keepd-harness.js';

const PASSWORD = 'audit test passphrase';
const SECRET_NAME = 'payroll-secret-name.txt';
const DAY = 86_400_000;

interface Rec {
  seq: number;
  time: string;
  event: string;
  token: string | null;
  peer: string | null;
  source: string | null;
  fields: Record<string, any>;
}

const segmentFiles = (data: string) => fs.readdirSync(path.join(data, 'audit')).sort().map((f) => path.join(data, 'audit', f));

/** The lines of the (only) segment, and a writer for them. */
function lines(data: string): { file: string; lines: string[]; write(l: string[]): void } {
  const [file] = segmentFiles(data);
  return { file, lines: fs.readFileSync(file, 'utf8').trimEnd().split('\n'), write: (l) => fs.writeFileSync(file, l.join('\n') + '\n') };
}

describe('keepd audit log', () => {
  const tmp = tempDirs();
  let dir: string;
  let data: string;
  let keepd: Keepd;
  let agent: Token;
  let admin: Token;
  let extra: Token;
  let started: number;
  let snaps: string[] = [];

  beforeAll(async () => {
    dir = tmp.make('keep-audit-');
    data = path.join(dir, 'data');
    await keepdInit(data);
    agent = await createToken(data, 'agent', { sources: ['web1'] });
    admin = await createToken(data, 'admin');
    keepd = await startKeepd(data, { metrics: true });
    started = Date.now();
    await keepJson(['init', '--kdf-cost', '12'], agentEnv(keepd, admin.token, PASSWORD));
    const src = path.join(dir, 'src');
    fs.mkdirSync(src);
    fs.writeFileSync(path.join(src, SECRET_NAME), 'salary 1\n');
    const env = agentEnv(keepd, agent.token, PASSWORD);
    snaps.push((await keepJson(['backup', src, '--source', 'web1'], env)).snapshot);
    fs.writeFileSync(path.join(src, SECRET_NAME), 'salary 2, a little more\n');
    snaps.push((await keepJson(['backup', src, '--source', 'web1'], env)).snapshot);
    const r = await runKeep(['restore', 'latest', '--source', 'web1', '--target', path.join(dir, 'restored')], env);
    expect(r.code, r.stderr).toBe(0);
    // keepd's shell, while keepd serves
    extra = await createToken(data, 'agent', { sources: ['web2'] });
    expect((await runKeepd(['token', 'revoke', extra.id, '--data', data])).code).toBe(0);
    const f = await runKeep(['forget', '--keep-last', '1', '--prune'], agentEnv(keepd, admin.token, PASSWORD));
    expect(f.code, f.stderr).toBe(0);
  }, 120_000);

  afterAll(killAllKeepd);

  it('records each event with token id, peer address and keepd time; nothing secret in the files', async () => {
    const recs: Rec[] = await keepdJson(['audit', 'list', '--data', data]);
    expect(recs.map((r) => r.seq)).toEqual(recs.map((_, i) => i + 1));
    const find = (event: string, pred: (r: Rec) => boolean = () => true) => {
      const r = recs.find((x) => x.event === event && pred(x));
      expect(r, `${event} in ${JSON.stringify(recs.map((x) => x.event))}`).toBeDefined();
      return r!;
    };
    for (const r of recs) expect(Date.parse(r.time)).toBeLessThanOrEqual(Date.now());
    expect(find('token.create', (r) => r.fields.id === agent.id)).toMatchObject({ token: null, peer: 'local', fields: { role: 'agent', sources: ['web1'] } });
    expect(find('token.new-peer', (r) => r.token === admin.id).peer).toBe('127.0.0.1');
    expect(find('token.new-peer', (r) => r.token === agent.id).peer).toBe('127.0.0.1');
    expect(recs.filter((r) => r.event === 'token.new-peer' && r.token === agent.id)).toHaveLength(1); // once per address, not per call
    expect(find('key.add')).toMatchObject({ token: admin.id, peer: '127.0.0.1' });
    expect(find('session.open')).toMatchObject({ token: agent.id, peer: '127.0.0.1', source: 'web1' });
    const commit = find('session.commit', (r) => r.fields.snapshot === snaps[1]);
    expect(commit).toMatchObject({ token: agent.id, peer: '127.0.0.1', source: 'web1', fields: { files: 1 } });
    expect(commit.fields.bytes).toBe('salary 2, a little more\n'.length);
    // a session's open record is written with its commit, in one durable batch: adjacent, with when it opened
    const open = find('session.open', (r) => r.fields.session === commit.fields.session);
    expect(open.seq).toBe(commit.seq - 1);
    expect(open.time).toBe(commit.time);
    expect(Date.parse(open.fields.opened as string)).toBeLessThanOrEqual(Date.parse(commit.time));
    expect(Date.parse(open.fields.opened as string)).toBeGreaterThanOrEqual(started);
    expect(Date.parse(commit.time)).toBeGreaterThanOrEqual(started);
    const reads = recs.filter((r) => r.event === 'read');
    expect(reads.length).toBeGreaterThan(0);
    for (const r of reads) expect(r).toMatchObject({ token: agent.id, peer: '127.0.0.1', fields: { complete: true } });
    expect(reads.reduce((n, r) => n + r.fields.bytes, 0)).toBeGreaterThan(0);
    expect(find('token.revoke')).toMatchObject({ peer: 'local', fields: { id: extra.id } });
    expect(find('forget')).toMatchObject({ token: admin.id, peer: '127.0.0.1', source: 'web1', fields: { snapshots_removed: 1, snapshots_kept: 1 } });
    expect(find('prune').token).toBe(admin.id);

    // Nothing an attacker with the audit files could use or a reader should not see.
    const files = allFiles(path.join(data, 'audit'));
    const text = files.map((f) => fs.readFileSync(f, 'latin1')).join('\n');
    for (const needle of [SECRET_NAME, PASSWORD, path.join(dir, 'src'), tokenSecret(agent.token), tokenSecret(admin.token), tokenSecret(extra.token), 'salary']) expect(text).not.toContain(needle);

    // The head is a metric, and verify proves the chain beside the serving keepd.
    const metrics = await (await fetch(`http://127.0.0.1:${keepd.metricsPort}/metrics`)).text();
    const head = Number(/^keep_audit_head_seq (\d+)$/m.exec(metrics)?.[1]);
    expect(head).toBe(recs.length);
    const v = await runKeepd(['audit', 'verify', '--data', data, '--json']);
    expect(v.code, v.stderr).toBe(0);
    expect(JSON.parse(v.stdout)).toMatchObject({ ok: true, records: recs.length, checkpoint: { seq: head } });
  });

  it('list filters by event family, source and time', async () => {
    const tokens: Rec[] = await keepdJson(['audit', 'list', '--data', data, '--event', 'token']);
    expect(new Set(tokens.map((r) => r.event))).toEqual(new Set(['token.create', 'token.new-peer', 'token.revoke']));
    const commits: Rec[] = await keepdJson(['audit', 'list', '--data', data, '--event', 'session.commit']);
    expect(commits.map((r) => r.fields.snapshot)).toEqual(snaps);
    const web1: Rec[] = await keepdJson(['audit', 'list', '--data', data, '--source', 'web1']);
    expect(web1.length).toBeGreaterThan(0);
    expect(web1.every((r) => r.source === 'web1')).toBe(true);
    expect(await keepdJson(['audit', 'list', '--data', data, '--since', new Date(Date.now() + 60_000).toISOString()])).toEqual([]);
    expect((await keepdJson(['audit', 'list', '--data', data, '--since', '1h'])).length).toBeGreaterThan(commits.length);
    const human = await runKeepd(['audit', 'list', '--data', data, '--event', 'session.commit']);
    expect(human.stdout).toContain(`snapshot=${snaps[0]}`);
    expect((await runKeepd(['audit', 'list', '--data', data, '--since', 'yesterday'])).code).toBe(2);
  });

  it('a replica audits its sync and its promotion in its own log', async () => {
    const replica = path.join(dir, 'replica');
    const rt = await createToken(data, 'replica');
    const s = await runKeepd(['sync', '--data', replica, '--from', keepd.url], { env: { KEEP_TOKEN: rt.token } });
    expect(s.code, s.stderr).toBe(0);
    expect((await runKeepd(['promote', '--data', replica])).code).toBe(0);
    const recs: Rec[] = await keepdJson(['audit', 'list', '--data', replica]);
    expect(recs.map((r) => r.event)).toEqual(['sync', 'promote']);
    expect(recs[0]).toMatchObject({ peer: 'local', fields: { upstream: keepd.url, snapshots_synced: 1, snapshots_failed: 0 } });
    expect(recs[1].fields.previous_upstream).toBe(keepd.url);
    expect((await runKeepd(['audit', 'verify', '--data', replica])).code).toBe(0);
  });

  describe('tampering with a copy of the data directory', () => {
    let n: number;
    beforeAll(async () => {
      await keepd.stop();
      n = lines(data).lines.length;
      expect(n).toBeGreaterThan(8);
    });

    const tamper = (name: string, change: (l: string[]) => string[]) => {
      const copy = path.join(dir, `tampered-${name}`);
      fs.cpSync(data, copy, { recursive: true });
      const seg = lines(copy);
      seg.write(change(seg.lines));
      return copy;
    };
    const expectDamage = async (copy: string, seq: number, reason: RegExp) => {
      const r = await runKeepd(['audit', 'verify', '--data', copy, '--json']);
      expect(r.code, r.stdout + r.stderr).toBe(4);
      expect(JSON.parse(r.stdout).damage).toMatchObject({ seq, reason: expect.stringMatching(reason) });
      const human = await runKeepd(['audit', 'verify', '--data', copy]);
      expect(human.code).toBe(4);
      expect(human.stdout).toContain(`DAMAGE at seq ${seq}`);
    };

    it('an edited record', async () => {
      const copy = tamper('edit', (l) => l.map((x, i) => (i === 4 ? x.replace('"peer":"127.0.0.1"', '"peer":"10.9.9.9"').replace('"peer":"local"', '"peer":"elsewhere"') : x)));
      expect(lines(copy).lines[4]).not.toBe(lines(data).lines[4]);
      await expectDamage(copy, 5, /edited/);
    });

    it('a deleted record', async () => {
      await expectDamage(tamper('delete', (l) => l.filter((_, i) => i !== 3)), 4, /deleted or reordered/);
    });

    it('reordered records', async () => {
      await expectDamage(tamper('reorder', (l) => [...l.slice(0, 5), l[6], l[5], ...l.slice(7)]), 6, /deleted or reordered/);
    });

    it('a truncated log (against the checkpoint in state.mdb)', async () => {
      await expectDamage(tamper('truncate', (l) => l.slice(0, n - 2)), n - 1, /truncated/);
    });

    it('a chain rewritten after an edit (every hash recomputed) still differs from the checkpoint', async () => {
      const copy = tamper('rewrite', (l) => {
        let prev = '';
        return l.map((line, i) => {
          const o = JSON.parse(line);
          if (i === 2) o.peer = '10.9.9.9';
          if (i > 0) o.prev = prev;
          delete o.hash;
          o.hash = crypto.createHash('sha256').update(JSON.stringify(o).replace(/,"hash":"[0-9a-f]{64}"\}$/, '}')).digest('hex');
          prev = o.hash;
          return JSON.stringify(o);
        });
      });
      await expectDamage(copy, n, /checkpoint/);
    });

    it('an untouched copy verifies', async () => {
      const r = await runKeepd(['audit', 'verify', '--data', tamper('none', (l) => l)]);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect(r.stdout).toContain('chain intact');
    });
  });

  it('retention removes whole old segments; the chain still verifies from the cut, and a removed newer segment does not', async () => {
    const copy = path.join(dir, 'retention');
    fs.cpSync(data, copy, { recursive: true });
    const before = (await keepdJson(['audit', 'list', '--data', copy])) as Rec[];
    // 40 days on, in another month: the next record starts a new segment.
    const later = { KEEP_CLOCK_OFFSET_MS: String(40 * DAY) };
    await keepdJson(['token', 'create', '--role', 'admin', '--data', copy], { env: later });
    expect(segmentFiles(copy)).toHaveLength(2);
    // keepd 42 days on, keeping 1 day: the first segment goes at start.
    const k = await startKeepd(copy, { env: { KEEP_CLOCK_OFFSET_MS: String(42 * DAY) }, args: ['--audit-retention', '1d'] });
    await k.stop();
    expect(segmentFiles(copy)).toHaveLength(1);
    const v = await runKeepd(['audit', 'verify', '--data', copy, '--json']);
    expect(v.code, v.stdout + v.stderr).toBe(0);
    expect(JSON.parse(v.stdout)).toMatchObject({ ok: true, pruned_through: before.length, first_seq: before.length + 1 });
    const after = (await keepdJson(['audit', 'list', '--data', copy])) as Rec[];
    expect(after.map((r) => r.event)).toEqual(expect.arrayContaining(['token.create', 'audit.prune']));
    // Deleting what is left is no retention: caught against the checkpoints.
    for (const f of segmentFiles(copy)) fs.rmSync(f);
    const gone = await runKeepd(['audit', 'verify', '--data', copy, '--json']);
    expect(gone.code).toBe(4);
    expect(JSON.parse(gone.stdout).damage.seq).toBe(before.length + 1);
  });
});
