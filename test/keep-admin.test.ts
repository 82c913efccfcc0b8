/**
 * Issue 17 item 8: remote administration. A real keepd serves; the real keep
 * CLI runs `keep admin status|alerts|check|forget|prune|token|audit list`
 * over gRPC with an admin token and gets what keepd's own commands print
 * (--json: the same JSON). An agent token is refused (PERMISSION_DENIED,
 * exit 1) by every subcommand; a created token is printed once and never
 * reaches keepd's log; and keepd's audit log (keepd audit list) holds each
 * admin call with the admin's token id and peer address.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDirs } from './helpers.js';
import { agentEnv, createToken, Keepd, keepdInit, keepdJson, keepJson, killAllKeepd, runKeep, runKeepd, startKeepd, Token, tokenSecret } from './keepd-harness.js';

const PASSWORD = 'admin test passphrase';

interface Rec {
  seq: number;
  event: string;
  token: string | null;
  peer: string | null;
  source: string | null;
  fields: Record<string, any>;
}

describe('keep admin over gRPC', () => {
  const tmp = tempDirs();
  let data: string;
  let keepd: Keepd;
  let admin: Token;
  let agent: Token;
  /** the admin's environment: no passphrase (keep admin needs none) */
  let env: Record<string, string | undefined>;
  const created: { id: string; token: string }[] = [];

  beforeAll(async () => {
    const dir = tmp.make('keep-admin-');
    data = path.join(dir, 'data');
    await keepdInit(data);
    admin = await createToken(data, 'admin');
    agent = await createToken(data, 'agent', { sources: ['web1'] });
    keepd = await startKeepd(data);
    await keepJson(['init', '--kdf-cost', '12'], agentEnv(keepd, admin.token, PASSWORD));
    const src = path.join(dir, 'src');
    fs.mkdirSync(src);
    const backup = agentEnv(keepd, agent.token, PASSWORD);
    for (const text of ['one\n', 'two, a little longer\n', 'three, longer still\n']) {
      fs.writeFileSync(path.join(src, 'f.txt'), text);
      await keepJson(['backup', src, '--source', 'web1', '--tier', 'standard'], backup);
    }
    env = { KEEP_REPO: keepd.url, KEEP_TOKEN: admin.token };
  }, 120_000);

  afterAll(killAllKeepd);

  const admin$ = (args: string[], e = env) => runKeep(['admin', ...args], e);
  const adminJson = (args: string[]) => keepJson(['admin', ...args], env);

  it('status: keepd status --json over gRPC; --check with the monitoring-plugin exit code', async () => {
    const remote = await adminJson(['status']);
    const local = await keepdJson(['status', '--data', data]);
    const strip = (s: any) => ({ ...s, sources: s.sources.map(({ age_s: _a, ...x }: any) => x), watchdog: { check: s.watchdog.check.status } });
    expect(strip(remote)).toEqual(strip(local));
    expect(remote.sources.map((s: any) => [s.source, s.snapshots, s.rpo_state])).toEqual([['web1', 3, 'ok']]);

    const human = await admin$(['status']);
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toContain(`repository ${local.repository}: 3 snapshots`);
    expect(human.stdout).toMatch(/^web1 .* tier standard {2}RPO ok$/m);
    expect(human.stdout).toMatch(/^watchdog: KEEP [A-Z]+ - /m);

    // keepd's watchdog evaluates within seconds of starting: OK, as keepd status --check says.
    const check = await admin$(['status', '--check']);
    const localCheck = await runKeepd(['status', '--check', '--data', data]);
    expect(check.stdout.trim()).toMatch(/^KEEP (OK|WARNING|CRITICAL|UNKNOWN) - /);
    expect(check.code).toBe(localCheck.code);
    expect(check.stdout.split(' ')[1]).toBe(localCheck.stdout.split(' ')[1]);
    const checkJson = JSON.parse((await admin$(['status', '--check', '--json'])).stdout);
    expect(checkJson).toMatchObject({ status: expect.stringMatching(/^(OK|WARNING|CRITICAL|UNKNOWN)$/), code: check.code });

    // A keepd that cannot be asked is UNKNOWN (3), not a crash (1).
    const down = await admin$(['status', '--check'], { ...env, KEEP_REPO: 'grpc://127.0.0.1:1' });
    expect(down.code).toBe(3);
    expect(down.stdout).toMatch(/^KEEP UNKNOWN - cannot ask keepd: /);
  });

  it('alerts: keepd alerts --json over gRPC', async () => {
    expect(await adminJson(['alerts'])).toEqual(await keepdJson(['alerts', '--data', data]));
    const human = await admin$(['alerts']);
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toMatch(/^(no active alerts|firing|resolved)/);
  });

  it('check: the keyless check of the served repository; its human form is keepd check\'s', async () => {
    const r = await adminJson(['check', '--read-data']);
    expect(r).toMatchObject({ ok: true, snapshots: 3, errors: [] });
    expect(r.blobs_read).toBe(r.blobs);
    const human = await admin$(['check']);
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toMatch(/^checked 3 snapshots, \d+ packs, \d+ blobs; read 0 blobs \(0 bytes\)$/m);
  });

  it('forget and prune: a dry run changes nothing; the real ones remove and collect', async () => {
    const dry = await adminJson(['forget', '--keep-last', '1', '--source', 'web1', '--dry-run']);
    expect(dry.groups).toHaveLength(1);
    expect(dry.groups[0].removed).toHaveLength(2);
    expect((await adminJson(['status'])).snapshots).toBe(3);

    const human = await admin$(['forget', '--keep-last', '2', '--source', 'web1']);
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toMatch(/^source web1.*\n( {2}(keep {2}|remove) [0-9a-f]{8} .*\n){3} {2}removed 1 snapshot\(s\)$/m);

    const f = await adminJson(['forget', '--keep-last', '1', '--source', 'web1', '--prune']);
    expect(f.groups[0].removed).toHaveLength(1);
    expect(f.prune).toMatchObject({ dry_run: false });
    // The forgotten snapshots' blobs are garbage now, removed or kept for the GC margin (recent).
    expect(f.prune.blobs_removed + f.prune.blobs_kept_recent).toBeGreaterThan(0);
    expect((await keepdJson(['status', '--data', data])).snapshots).toBe(1);

    const pruneDry = await adminJson(['prune', '--dry-run']);
    expect(pruneDry).toMatchObject({ dry_run: true, blobs_removed: 0 });
    const prune = await admin$(['prune', '--repack-below', '0.9']);
    expect(prune.code, prune.stderr).toBe(0);
    expect(prune.stdout).toMatch(/^removed \d+ of \d+ blobs \(\d+ bytes\); \d+ unreferenced but recent kept; .* bytes in [\d.]+ s$/m);
    const bad = await admin$(['prune', '--repack-below', '2']);
    expect(bad.code).toBe(2);
  });

  it('token create, list and revoke: the token printed once, never in keepd\'s output', async () => {
    const made = await adminJson(['token', 'create', '--role', 'agent', '--source', 'web2']);
    expect(made).toMatchObject({ role: 'agent', sources: ['web2'], dedup: 'source' });
    expect(made.token).toMatch(new RegExp(`^keep_${made.id}_[A-Za-z0-9_-]{43}$`));
    created.push(made);
    // The human form prints the token alone: one line a script can capture.
    const plain = await admin$(['token', 'create', '--role', 'admin']);
    expect(plain.code, plain.stderr).toBe(0);
    expect(plain.stdout).toMatch(/^keep_[0-9a-f]{16}_[A-Za-z0-9_-]{43}\n$/);
    const second = plain.stdout.trim();
    created.push({ id: second.split('_')[1], token: second });

    // keepd's grants checks hold over gRPC too.
    const noSource = await admin$(['token', 'create', '--role', 'agent']);
    expect(noSource.code).toBe(2);
    expect(noSource.stderr).toContain('--all-sources');

    const list = await adminJson(['token', 'list']);
    expect(list).toEqual(await keepdJson(['token', 'list', '--data', data]));
    expect(list.map((t: any) => t.id)).toEqual(expect.arrayContaining([admin.id, agent.id, made.id, created[1].id]));
    for (const t of list) expect(t).not.toHaveProperty('hash');
    const human = await admin$(['token', 'list']);
    expect(human.stdout).toMatch(new RegExp(`^${made.id} {2}agent {4}web2 {2}dedup=source$`, 'm'));

    // The new admin token administers; the new agent token is authenticated but refused.
    expect((await admin$(['alerts'], { ...env, KEEP_TOKEN: second })).code).toBe(0);
    const refused = await admin$(['alerts'], { ...env, KEEP_TOKEN: made.token });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('keep admin needs an admin token');

    const revoked = await admin$(['token', 'revoke', made.id]);
    expect(revoked.code, revoked.stderr).toBe(0);
    expect(revoked.stdout).toBe(`revoked ${made.id}\n`);
    expect((await adminJson(['token', 'list'])).find((t: any) => t.id === made.id)).toMatchObject({ revoked: true });
    const gone = await admin$(['alerts'], { ...env, KEEP_TOKEN: made.token });
    expect(gone.code).toBe(1);
    expect(gone.stderr).toMatch(/unknown or revoked token/);
    expect((await admin$(['token', 'revoke', '0123456789abcdef'])).code).toBe(1);

    for (const t of created) expect(keepd.output()).not.toContain(tokenSecret(t.token));
  });

  it('audit list: keepd audit list over gRPC, with its filters', async () => {
    const remote: Rec[] = await adminJson(['audit', 'list', '--event', 'token']);
    expect(remote.length).toBeGreaterThan(0);
    expect(remote.every((r) => r.event.startsWith('token.'))).toBe(true);
    const local: Rec[] = await keepdJson(['audit', 'list', '--data', data, '--event', 'token']);
    expect(remote).toEqual(local);
    const since = await adminJson(['audit', 'list', '--since', '10m', '--source', 'web1']);
    expect(since.length).toBeGreaterThan(0);
    expect(since.every((r: Rec) => r.source === 'web1')).toBe(true);
    const human = await admin$(['audit', 'list', '--event', 'token.revoke']);
    expect(human.stdout).toMatch(new RegExp(`^ +\\d+  \\S+  token.revoke {6}token=${admin.id}  peer=127.0.0.1  source=-  id=${created[0].id}`, 'm'));
    expect((await admin$(['audit', 'list', '--since', 'yesterday'])).code).toBe(2);
  });

  it('an agent token is refused by every subcommand: PERMISSION_DENIED, exit 1, a clear message', async () => {
    const as = { KEEP_REPO: keepd.url, KEEP_TOKEN: agent.token };
    const calls = [['status'], ['alerts'], ['check'], ['prune'], ['forget', '--keep-last', '1'], ['token', 'list'], ['token', 'create', '--role', 'admin'], ['token', 'revoke', admin.id], ['audit', 'list']];
    for (const c of calls) {
      const r = await admin$(c, as);
      expect(r.code, `keep admin ${c.join(' ')}: ${r.stderr}`).toBe(1);
      expect(r.stderr).toContain('keep admin needs an admin token');
      expect(r.stderr).toContain('a agent token may not do this');
      expect(r.stdout).toBe('');
    }
    // Nothing changed: the admin token still works, no token was made.
    expect((await adminJson(['token', 'list'])).find((t: any) => t.id === admin.id).revoked).toBeUndefined();
    // --check keeps the plugin contract: UNKNOWN.
    expect((await admin$(['status', '--check'], as)).code).toBe(3);
  });

  it("the audit log holds each admin call with the admin's token id and peer", async () => {
    const recs: Rec[] = await keepdJson(['audit', 'list', '--data', data]);
    const byAdmin = (event: string) => recs.filter((r) => r.event === event && r.token === admin.id);
    for (const event of ['admin.status', 'admin.alerts', 'check', 'forget', 'prune', 'token.create', 'token.revoke', 'admin.token.list', 'admin.audit.list']) {
      const found = byAdmin(event);
      expect(found.length, `${event} by the admin in ${JSON.stringify(recs.map((r) => [r.event, r.token]))}`).toBeGreaterThan(0);
      for (const r of found) expect(r.peer).toBe('127.0.0.1');
    }
    expect(byAdmin('check').map((r) => r.fields)).toEqual([expect.objectContaining({ ok: true, read_data: true }), expect.objectContaining({ ok: true })]);
    // A dry run is audited as one; the real forgets and prunes carry their counts.
    expect(byAdmin('forget').map((r) => [r.fields.snapshots_removed, r.fields.dry_run ?? false])).toEqual([
      [2, true],
      [1, false],
      [1, false],
    ]);
    expect(byAdmin('prune').map((r) => r.fields.dry_run ?? false)).toEqual([false, true, false]);
    expect(byAdmin('token.create').map((r) => r.fields.role)).toEqual(['agent', 'admin']);
    expect(byAdmin('token.revoke').map((r) => r.fields.id)).toEqual([created[0].id]);
    expect(byAdmin('admin.audit.list').map((r) => r.fields.event ?? null)).toEqual(['token', null, 'token.revoke']);
    // The refused calls left no admin record under the agent's token.
    expect(recs.filter((r) => r.token === agent.id && (r.event.startsWith('admin.') || ['check', 'prune', 'forget', 'token.create', 'token.revoke'].includes(r.event)))).toEqual([]);
    // The whole log still proves its chain.
    expect((await runKeepd(['audit', 'verify', '--data', data])).code).toBe(0);
    // Nothing secret in it: no token of those made over gRPC.
    const text = fs.readdirSync(path.join(data, 'audit')).map((f) => fs.readFileSync(path.join(data, 'audit', f), 'utf8')).join('');
    for (const t of [...created, admin]) expect(text).not.toContain(tokenSecret(t.token));
  });
});
