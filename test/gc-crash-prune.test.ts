/**
 * Issue 5, "must show" 2 (second half): `keepd prune` SIGKILLed at random
 * points while it sweeps, repacks and deletes packs, with keepd serving.
 *
 * Two sources share a file (stored once). "base" has one snapshot that is
 * never forgotten; "churn" gets a new snapshot every iteration whose pack
 * holds a little lasting data (a new 1 MiB file) and much that the next
 * iteration replaces (a 3 MiB file and 48 small files), and `keepd forget
 * --source churn --keep-last 1` drops the previous one. So every prune run
 * two hours later (KEEP_CLOCK_OFFSET_MS, no session open) has blobs to
 * sweep, sparse packs to repack and dead packs to delete.
 * The prune is killed a seeded random delay after it takes maintenance.lock (seen
 * through inotify; node's start-up before that is not an interesting kill
 * point), uniform over 1.2x the length of the last complete prune, or at a
 * step of the repack seen from outside (its new pack created in tmp/, that
 * pack renamed into packs/, an old pack unlinked). After
 * each kill: `keepd check` passes (orphan and tmp packs are reported, not
 * errors), exactly the expected snapshots are listed and each restores
 * byte-identical, and a rerun of the prune completes. At the end `keepd check
 * --read-data` passes with no orphan or unfinished pack left, and an empty
 * maintenance.lock (what a kill or power loss between creating the lock and
 * writing its pid leaves) does not stop the next prune.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { jsonError, MiB, packFiles, tempDirs } from './helpers.js';
import { agentEnv, createToken, keepdInit, keepJson, killAllKeepd, runKeepd, start, KEEPD_BIN, startKeepd } from './keepd-harness.js';
import { check, clockEnv, forget, manifest, pollUntil, prune, PruneReport, restoreManifest, seeded, TWO_HOURS_MS, whenCreated, writeRandom } from './gc-util.js';

const RANDOM_KILLS = 6;

/** Where to kill the prune: a delay after it took maintenance.lock, or a moment seen in the data directory. */
type KillPoint = { kind: 'delay' | 'repack-tmp' | 'repack-renamed' | 'pack-deleted' };

interface Outcome {
  point: string;
  killed: boolean;
  orphans: number;
  unfinished: number;
  rerun: PruneReport;
}

describe('keepd prune SIGKILLed at random points', () => {
  const tmp = tempDirs();
  afterAll(killAllKeepd);

  it('check passes after every kill, every live snapshot restores, the rerun completes', async () => {
    const dir = tmp.make('keep-gc-crash-prune-');
    const data = path.join(dir, 'data');
    const scratch = path.join(dir, 'scratch');
    fs.mkdirSync(scratch);
    const baseDir = path.join(dir, 'base');
    const churnDir = path.join(dir, 'churn');
    await keepdInit(data);
    const baseToken = (await createToken(data, 'agent', { sources: ['base'] })).token;
    const churnToken = (await createToken(data, 'agent', { sources: ['churn'] })).token;
    const admin = (await createToken(data, 'admin')).token;
    const keepd = await startKeepd(data);
    await keepJson(['init', '--kdf-cost', '12'], agentEnv(keepd, baseToken));

    // The shared file, stored once, referenced by both sources.
    writeRandom(path.join(baseDir, 'shared.bin'), 2 * MiB);
    writeRandom(path.join(baseDir, 'base-only.bin'), 512 * 1024);
    fs.mkdirSync(churnDir, { recursive: true });
    fs.copyFileSync(path.join(baseDir, 'shared.bin'), path.join(churnDir, 'shared.bin'));
    const expected = new Map<string, { dir: string; manifest: Record<string, string> }>();
    const base = await keepJson(['backup', baseDir, '--source', 'base', '--compression', 'none'], agentEnv(keepd, baseToken));
    expected.set(base.snapshot, { dir: baseDir, manifest: manifest(baseDir) });

    let churnSnap: string | undefined;
    const churn = async (i: number) => {
      writeRandom(path.join(churnDir, 'lasting', `keep-${i}.bin`), MiB);
      writeRandom(path.join(churnDir, 'transient.bin'), 3 * MiB);
      for (let k = 0; k < 48; k++) writeRandom(path.join(churnDir, 'small', `s${k}.bin`), 8 * 1024 + i);
      const m = manifest(churnDir);
      const b = await keepJson(['backup', churnDir, '--source', 'churn', '--compression', 'none'], agentEnv(keepd, churnToken));
      expected.set(b.snapshot, { dir: churnDir, manifest: m });
      if (churnSnap) {
        const f = await forget(data, ['--source', 'churn', '--keep-last', '1']);
        expect(f.groups[0].removed).toEqual([churnSnap]);
        expected.delete(churnSnap);
      }
      churnSnap = b.snapshot;
    };
    const verifyAll = async (when: string) => {
      const listed = ((await keepJson(['snapshots'], agentEnv(keepd, admin))) as { id: string }[]).map((s) => s.id);
      expect(listed.sort(), `snapshots listed ${when}`).toEqual([...expected.keys()].sort());
      await Promise.all(
        [...expected].map(async ([id, e]) => {
          const got = await restoreManifest(agentEnv(keepd, admin), id, e.dir, scratch);
          expect(got.ok ? 'restored' : got.stderr, `restore of ${id} ${when}`).toBe('restored');
          if (got.ok) expect(got.manifest, `snapshot ${id} ${when}`).toEqual(e.manifest);
        }),
      );
    };

    // Calibration: one complete prune (after a forget) gives the kill window.
    await churn(0);
    await churn(1);
    const first = await prune(data, TWO_HOURS_MS);
    expect(first.blobs_removed).toBeGreaterThan(0);
    let windowMs = Math.max(20, first.duration_s * 1000 * 1.2);

    const rand = seeded(0x9e3779b9);
    const plan: KillPoint[] = [];
    for (let i = 0; i < RANDOM_KILLS; i++) plan.push({ kind: 'delay' });
    // Also the repack's and the pack deletion's steps, seen from outside: a new pack being
    // written in tmp/, renamed into packs/ (before the index switches to it), an old one unlinked.
    plan.splice(2, 0, { kind: 'repack-tmp' });
    plan.splice(5, 0, { kind: 'repack-renamed' });
    plan.splice(8, 0, { kind: 'pack-deleted' });
    const outcomes: Outcome[] = [];
    for (const [i, kp] of plan.entries()) {
      await churn(i + 2);
      const before = packFiles(data);
      const packsBefore = before.length;
      const run = start(KEEPD_BIN, ['prune', '--data', data, '--json'], { env: clockEnv(TWO_HOURS_MS) });
      let point: string;
      let fired: boolean;
      if (kp.kind === 'delay') {
        const delayMs = Math.round(rand() * windowMs);
        point = `lock + ${delayMs} ms`;
        fired = (await whenCreated(data, (n) => n === 'maintenance.lock', run.result)) !== undefined;
        if (fired) fired = await Promise.race([new Promise<boolean>((r) => setTimeout(() => r(true), delayMs)), run.result.then(() => false)]);
      } else if (kp.kind === 'repack-tmp') {
        point = kp.kind;
        fired = (await whenCreated(path.join(data, 'tmp'), (n) => n.endsWith('.pack.tmp'), run.result)) !== undefined;
      } else if (kp.kind === 'repack-renamed') {
        point = kp.kind;
        fired = await pollUntil(() => packFiles(data).length > packsBefore, run.result);
      } else {
        point = kp.kind;
        fired = await pollUntil(() => before.some((f) => !fs.existsSync(f)), run.result);
      }
      run.child.kill('SIGKILL');
      const res = await run.result;
      const killed = res.signal === 'SIGKILL';
      if (!killed) expect(res.code, res.stderr).toBe(0);
      else expect(fired, `kill point ${point}`).toBe(true);

      const report = await check(data);
      const when = `after prune killed at ${point} (iteration ${i})`;
      expect(report.errors, when).toEqual([]);
      expect(report.ok).toBe(true);
      expect(report.exit).toBe(0);
      await verifyAll(when);

      // The rerun completes (a stale maintenance.lock from the killed run does not stop it).
      const rerun = await prune(data, TWO_HOURS_MS);
      outcomes.push({ point, killed, orphans: report.orphan_packs.length, unfinished: report.unfinished_packs, rerun });
      if (!killed) windowMs = Math.max(20, (JSON.parse(res.stdout) as PruneReport).duration_s * 1000 * 1.2);
      else windowMs = Math.max(windowMs, rerun.duration_s * 1000 * 1.2);
    }

    const killedRuns = outcomes.filter((o) => o.killed);
    console.log(`gc-crash-prune: ${killedRuns.length} of ${outcomes.length} prunes killed mid-run; debris left by kills: ${killedRuns.filter((o) => o.orphans + o.unfinished > 0).length} runs with orphan/tmp packs; reruns repacked ${outcomes.reduce((n, o) => n + o.rerun.packs_repacked, 0)} packs, deleted ${outcomes.reduce((n, o) => n + o.rerun.orphan_packs_deleted, 0)} orphans`);
    for (const o of outcomes) console.log(`  kill at ${o.point.padEnd(16)} killed=${o.killed} orphan_packs=${o.orphans} unfinished=${o.unfinished} rerun removed ${o.rerun.blobs_removed} blobs, repacked ${o.rerun.packs_repacked}`);
    expect(killedRuns.length, 'most prunes must be killed mid-run').toBeGreaterThanOrEqual(plan.length / 2);

    const final = await check(data, true);
    expect(final.errors).toEqual([]);
    expect(final.ok).toBe(true);
    expect(final.orphan_packs).toEqual([]);
    expect(final.unfinished_packs).toBe(0);
    expect(final.snapshots).toBe(2);

    // A prune killed (or a power loss) before its lock held its pid leaves an empty maintenance.lock: stale, not a prune.
    fs.writeFileSync(path.join(data, 'maintenance.lock'), '');
    const afterEmptyLock = await prune(data, TWO_HOURS_MS);
    expect(afterEmptyLock.snapshots).toBe(2);
    expect(fs.existsSync(path.join(data, 'maintenance.lock'))).toBe(false);
    // A live prune's lock (here: this test process's pid) is respected.
    fs.writeFileSync(path.join(data, 'maintenance.lock'), String(process.pid));
    const refused = await runKeepd(['prune', '--data', data, '--json'], { env: clockEnv(TWO_HOURS_MS) });
    expect(refused.code).toBe(11);
    expect(jsonError(refused)).toMatch(/^maintenance is running \(pid \d+\)/);
    fs.rmSync(path.join(data, 'maintenance.lock'));
  }, 420_000); // ~80-110 s alone; a guard against a hang, not a speed check (twice that on a loaded machine)
});
