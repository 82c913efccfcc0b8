/**
 * Issue 5, "must show" 3: the retention CLI, `keepd forget`, driven as an
 * admin would, against a real keepd with real agents.
 *
 * - `--dry-run --json` lists every snapshot of the group with keep/remove and
 *   restic's reasons, and removes nothing;
 * - the real run removes exactly the snapshots the dry run marked "remove";
 * - the parent of an open backup session is protected: a `keep backup
 *   --stdin --parent OLD` is held open (its stdin not yet closed) while
 *   `forget --keep-last 1` keeps OLD with a reason naming the open session;
 *   once the backup commits, OLD goes;
 * - `--tier standard` applies the tier's preset (within 7 days of the newest),
 *   and a source backed up with `--tier standard` gets it without flags;
 * - no policy at all: exit 2 with one clear line on stderr, nothing removed.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jsonError, MiB, randomBytes, sha256, summaryLine, tempDirs } from './helpers.js';
import { agentEnv, createToken, Keepd, keepdInit, keepJson, killAllKeepd, runKeepd, startKeepd } from './keepd-harness.js';
import { clockEnv, count, forget, ForgetGroup, pollUntil, restoreManifest, startKeepWithStdin, writeRandom } from './gc-util.js';

const DAY_MS = 86_400_000;

describe('keepd forget: dry run, real run, protected parents, tiers, no policy', () => {
  const tmp = tempDirs();
  let dir: string;
  let data: string;
  let keepd: Keepd;
  const tokens: Record<string, string> = {};
  const src = (s: string) => path.join(dir, `src-${s}`);
  const env = (s: string, extra: Record<string, string> = {}) => agentEnv(keepd, tokens[s], undefined, extra);

  /**
   * A small backup of source `s` after changing its directory; `offsetMs` moves the clocks of the agent and of
   * keepd (restarted for it): keepd records the commit time on its own clock and refuses an agent far from it.
   */
  async function backup(s: string, n: number, extra: string[] = [], offsetMs = 0): Promise<string> {
    writeRandom(path.join(src(s), `f${n}.bin`), 64 * 1024);
    if (offsetMs) await restartKeepd(offsetMs);
    try {
      const b = await keepJson(['backup', src(s), '--source', s, '--compression', 'none', ...extra], env(s, clockEnv(offsetMs)));
      return b.snapshot;
    } finally {
      if (offsetMs) await restartKeepd(0);
    }
  }
  async function restartKeepd(offsetMs: number): Promise<void> {
    await keepd.stop();
    keepd = await startKeepd(data, { env: clockEnv(offsetMs) });
  }
  const listed = async (s: string) => ((await keepJson(['snapshots', '--source', s], env(s))) as { id: string }[]).map((x) => x.id);

  beforeAll(async () => {
    dir = tmp.make('keep-gc-retention-');
    data = path.join(dir, 'data');
    await keepdInit(data);
    for (const s of ['r', 't', 'u']) tokens[s] = (await createToken(data, 'agent', { sources: [s] })).token;
    keepd = await startKeepd(data);
    await keepJson(['init', '--kdf-cost', '12'], env('r'));
  });
  afterAll(killAllKeepd);

  let r: string[] = [];
  let dryRemoved: string[] = [];

  it('--dry-run --json lists every snapshot with keep/remove and reasons, and removes nothing', async () => {
    for (let i = 0; i < 4; i++) r.push(await backup('r', i));
    const res = await forget(data, ['--source', 'r', '--keep-last', '2', '--dry-run']);
    expect(res.skipped).toEqual([]);
    expect(res.groups).toHaveLength(1);
    const g = res.groups[0];
    expect(g.source).toBe('r');
    expect(g.policy).toBe('keep 2 latest snapshots');
    // Every snapshot, newest first, each with its decision.
    expect(g.snapshots.map((s) => s.id)).toEqual([...r].reverse());
    expect(g.snapshots.map((s) => [s.keep, s.reasons])).toEqual([
      [true, ['last snapshot']],
      [true, ['last snapshot']],
      [false, []],
      [false, []],
    ]);
    for (const s of g.snapshots) expect(Date.parse(s.time)).not.toBeNaN();
    expect(g.removed).toEqual([r[1], r[0]]);
    dryRemoved = g.removed;
    expect(await listed('r'), 'a dry run removes nothing').toEqual(r);
  });

  it('the real run removes exactly the snapshots the dry run marked remove', async () => {
    const res = await forget(data, ['--source', 'r', '--keep-last', '2']);
    expect(res.groups[0].removed).toEqual(dryRemoved);
    expect(res.groups[0].snapshots.filter((s) => !s.keep).map((s) => s.id)).toEqual(dryRemoved);
    expect(await listed('r')).toEqual(r.slice(2));
    r = r.slice(2);
  });

  it('protects the parent of an open backup session, with the reason, until the session commits', async () => {
    const [older, newest] = r;
    const opened = count(keepd.output(), '"msg":"session opened"');
    // A stream backup built on the OLDER snapshot, held open until its stdin closes.
    const run = startKeepWithStdin(['backup', '--stdin', '--stdin-name', 'dump.sql', '--source', 'r', '--parent', older, '--compression', 'none', '--json'], env('r'));
    const dump = randomBytes(2 * MiB);
    run.child.stdin.write(dump.subarray(0, MiB));
    expect(await pollUntil(() => count(keepd.output(), '"msg":"session opened"') > opened, run.result), 'the session opens').toBe(true);

    const decisions = (g: ForgetGroup) => Object.fromEntries(g.snapshots.map((s) => [s.id, s]));
    const dry = await forget(data, ['--source', 'r', '--keep-last', '1', '--dry-run']);
    let d = decisions(dry.groups[0]);
    expect(d[newest]).toMatchObject({ keep: true, reasons: ['last snapshot'] });
    expect(d[older].keep).toBe(true);
    expect(d[older].reasons).toHaveLength(1);
    expect(d[older].reasons[0]).toMatch(/open backup session/);
    expect(dry.groups[0].removed).toEqual([]);

    const real = await forget(data, ['--source', 'r', '--keep-last', '1']);
    d = decisions(real.groups[0]);
    expect(d[older].reasons[0]).toMatch(/open backup session/);
    expect(real.groups[0].removed).toEqual([]);
    expect(await listed('r')).toEqual([older, newest]);

    // Let the backup finish: it commits on top of its protected parent.
    run.child.stdin.end(dump.subarray(MiB));
    const res = await run.result;
    expect(res.code, res.stderr).toBe(0);
    const out = summaryLine(res);
    expect(out.parent).toBe(older);

    // The session is gone, so is the protection. (The stream and the directory backups are different
    // path sets, so two groups by default: grouped by source alone, the stream is the one kept.)
    const after = await forget(data, ['--source', 'r', '--keep-last', '1', '--group-by', 'source']);
    d = decisions(after.groups[0]);
    expect(d[out.snapshot]).toMatchObject({ keep: true, reasons: ['last snapshot'] });
    expect(d[older]).toMatchObject({ keep: false, reasons: [] });
    expect(after.groups[0].removed.sort()).toEqual([older, newest].sort());
    expect(await listed('r')).toEqual([out.snapshot]);

    const target = fs.mkdtempSync(path.join(dir, 'restore-'));
    const rr = await keepJson(['restore', out.snapshot, '--target', target], env('r'));
    expect(rr).toBeTypeOf('object');
    expect(sha256(fs.readFileSync(path.join(target, 'dump.sql')))).toBe(sha256(dump));
  });

  it('--tier standard applies the preset (within 7 days of the newest); a tiered source gets it without flags', async () => {
    const old = await backup('t', 0, [], -8 * DAY_MS);
    const recent = [await backup('t', 1, [], -2 * DAY_MS), await backup('t', 2)];
    const dry = await forget(data, ['--source', 't', '--tier', 'standard', '--dry-run']);
    const g = dry.groups[0];
    expect(g.policy).toBe('tier standard: keep all snapshots within 7d of the newest');
    expect(g.snapshots.map((s) => [s.id, s.keep, s.reasons])).toEqual([
      [recent[1], true, ['within 7d']],
      [recent[0], true, ['within 7d']],
      [old, false, []],
    ]);
    expect(await listed('t')).toEqual([old, ...recent]);
    const real = await forget(data, ['--source', 't', '--tier', 'standard']);
    expect(real.groups[0].removed).toEqual([old]);
    expect(await listed('t')).toEqual(recent);

    // Backed up with --tier standard: forget with no flags uses the source's tier.
    const uOld = await backup('u', 0, ['--tier', 'standard'], -9 * DAY_MS);
    const uNew = await backup('u', 1, ['--tier', 'standard']);
    const u = await forget(data, ['--source', 'u']);
    expect(u.groups[0].policy).toBe('tier standard: keep all snapshots within 7d of the newest');
    expect(u.groups[0].removed).toEqual([uOld]);
    expect(await listed('u')).toEqual([uNew]);

    // The agent restores what the preset kept.
    const got = await restoreManifest(env('t'), recent[1], src('t'), dir);
    expect(got.ok).toBe(true);
  });

  it('no policy: exit 2, one clear line on stderr, nothing removed', async () => {
    const before = await listed('t');
    for (const json of [true, false]) {
      const res = await runKeepd(['forget', '--data', data, '--source', 't', ...(json ? ['--json'] : [])]);
      expect(res.code).toBe(2);
      const lines = res.stderr.split('\n').filter(Boolean);
      expect(lines, res.stderr).toHaveLength(1);
      // under --json the error is restic's exit_error object
      const message = json ? jsonError(res) : lines[0].replace(/^keepd: error: /, '');
      if (!json) expect(lines[0]).toMatch(/^keepd: error: /);
      expect(message).toMatch(/^no retention policy/);
      expect(message).toMatch(/--keep-last/);
      expect(message).toMatch(/--tier/);
    }
    expect(await listed('t')).toEqual(before);
  });
});
