/**
 * Issue 5, "must show" 2 (first half): keepd SIGKILLed at many points of a
 * backup and its commit, restarted on the same data directory each time.
 *
 * Every iteration writes ~18 MiB of fresh random data (so the backup streams
 * blobs, fills and flushes a 16 MiB pack mid-way, and commits), starts
 * `keep backup` over gRPC and SIGKILLs keepd at a kill point:
 *  - after a random delay counted from the moment keepd opens the backup's
 *    session: a seeded fraction of the measured session length of an
 *    uninterrupted backup plus 100 ms (capped at 2000 ms), or
 *  - on an event seen from outside: the session is opened (keepd's log), the
 *    first tmp pack is created, a pack is renamed into packs/ (the mid-backup
 *    flush), the snapshot file's tmp is created (commit, after the closure
 *    check), the snapshot file is renamed into place (commit, before LMDB).
 * After each kill keepd restarts, and: `keepd check` passes (orphan and
 * unfinished packs are reported, not errors); every snapshot committed so far
 * is still listed (plus, at most, the interrupted one if its commit was
 * durable); a rerun of the interrupted backup completes; the snapshots
 * committed in this iteration and one older snapshot (round robin) restore
 * byte-identical to their manifests. At the end a prune two hours later
 * clears the debris, `keepd check --read-data` passes with no orphans left,
 * and every snapshot is still listed and restores byte-identical.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { jsonError, MiB, packFiles, summaryLine, tempDirs } from './helpers.js';
import { agentEnv, createToken, Keepd, keepdInit, keepJson, killAllKeepd, runKeep, startKeep, startKeepd } from './keepd-harness.js';
import { check, count, keepdState, manifest, pollUntil, prune, restoreManifest, seeded, sleep, TWO_HOURS_MS, whenCreated, writeRandom } from './gc-util.js';

const FILES = 3;
const FILE_SIZE = 6 * MiB;
const RANDOM_KILLS = 5;

type KillPoint = { kind: 'delay'; ms: number } | { kind: 'session-opened' | 'tmp-pack' | 'pack-renamed' | 'snapshot-tmp' | 'snapshot-file' };

interface Outcome {
  point: string;
  /** was the agent still running when keepd was killed? */
  midBackup: boolean;
  agentExit: number | null;
  /** had keepd opened the backup's session when it was killed? */
  sessionOpened: boolean;
  /** the interrupted backup's snapshot survived the kill */
  committedAnyway: boolean;
  /** debris keepd check reported after the restart (allowed: prune removes it) */
  orphanPacks: number;
  unfinishedPacks: number;
}

describe('keepd SIGKILLed during backups and commits', () => {
  const tmp = tempDirs();
  afterAll(killAllKeepd);

  it('check passes after every kill, committed snapshots survive and restore, reruns complete', async () => {
    const dir = tmp.make('keep-gc-crash-keepd-');
    const data = path.join(dir, 'data');
    const src = path.join(dir, 'src');
    const scratch = path.join(dir, 'scratch');
    fs.mkdirSync(scratch);
    await keepdInit(data);
    const token = (await createToken(data, 'agent', { sources: ['big'] })).token;
    let keepd: Keepd = await startKeepd(data);
    const env = () => agentEnv(keepd, token);
    await keepJson(['init', '--kdf-cost', '12'], env());

    const committed = new Map<string, Record<string, string>>();
    const order: string[] = [];
    const remember = (id: string, m: Record<string, string>) => {
      committed.set(id, m);
      order.push(id);
    };
    const fill = (i: number) => {
      fs.rmSync(src, { recursive: true, force: true });
      for (let f = 0; f < FILES; f++) writeRandom(path.join(src, `data-${f}.bin`), FILE_SIZE);
      fs.writeFileSync(path.join(src, 'iteration.txt'), `iteration ${i}\n`);
      return manifest(src);
    };
    const backupArgs = ['backup', src, '--source', 'big', '--compression', 'none', '--json'];
    const expectRestores = async (id: string) => {
      const got = await restoreManifest(env(), id, src, scratch);
      expect(got.ok ? 'restored' : `${got.stderr} ${keepdState(keepd)}`, `restore of ${id}`).toBe('restored');
      if (got.ok) expect(got.manifest, `snapshot ${id}`).toEqual(committed.get(id));
    };

    // An uninterrupted backup: the first committed snapshot, and how long its session lasts.
    let m = fill(0);
    const opened0 = count(keepd.output(), '"msg":"session opened"');
    const baseline = startKeep(backupArgs, env());
    await pollUntil(() => count(keepd.output(), '"msg":"session opened"') > opened0, baseline.result);
    const t0 = performance.now();
    const b0 = await baseline.result;
    const sessionMs = performance.now() - t0;
    expect(b0.code, b0.stderr).toBe(0);
    remember(summaryLine(b0).snapshot, m);

    const rand = seeded(0x4b494c4c);
    const hi = Math.min(2000, sessionMs + 100);
    const plan: KillPoint[] = [];
    for (let i = 0; i < RANDOM_KILLS; i++) plan.push({ kind: 'delay', ms: Math.round(rand() * hi) });
    // Interleave the event-triggered points with the random ones.
    const events: KillPoint[] = [{ kind: 'session-opened' }, { kind: 'tmp-pack' }, { kind: 'pack-renamed' }, { kind: 'snapshot-tmp' }, { kind: 'snapshot-file' }];
    events.forEach((e, i) => plan.splice(i * 2 + 1, 0, e));

    const outcomes: Outcome[] = [];
    let roundRobin = 0;
    for (const [i, kp] of plan.entries()) {
      m = fill(i + 1);
      const packsBefore = packFiles(data).length;
      const opened = count(keepd.output(), '"msg":"session opened"');
      const run = startKeep(backupArgs, env());
      const exited = run.result;
      let fired: boolean;
      switch (kp.kind) {
        case 'delay':
          fired =
            (await pollUntil(() => count(keepd.output(), '"msg":"session opened"') > opened, exited)) &&
            (await Promise.race([sleep(kp.ms).then(() => true), exited.then(() => false)]));
          break;
        case 'session-opened':
          fired = await pollUntil(() => count(keepd.output(), '"msg":"session opened"') > opened, exited);
          break;
        case 'tmp-pack':
          fired = (await whenCreated(path.join(data, 'tmp'), (n) => n.endsWith('.pack.tmp'), exited)) !== undefined;
          break;
        case 'pack-renamed':
          fired = await pollUntil(() => packFiles(data).length > packsBefore, exited, 2);
          break;
        case 'snapshot-tmp':
          fired = (await whenCreated(path.join(data, 'snapshots'), (n) => n.endsWith('.tmp'), exited)) !== undefined;
          break;
        case 'snapshot-file':
          fired = (await whenCreated(path.join(data, 'snapshots'), (n) => /^[0-9a-f]{32}\.json$/.test(n), exited)) !== undefined;
          break;
      }
      const midBackup = run.child.exitCode === null && run.child.signalCode === null;
      const sessionOpened = count(keepd.output(), '"msg":"session opened"') > opened;
      const killed = await keepd.stop('SIGKILL');
      expect(killed.signal).toBe('SIGKILL');
      const res = await exited;
      const point = kp.kind === 'delay' ? `open + ${kp.ms} ms` : kp.kind;
      if (!midBackup || !fired) expect(res.code, `the backup finished before kill point "${point}": ${res.stderr}`).toBe(0);
      // Killed after keepd answered the commit, the agent may still succeed; otherwise it fails with one
      // line (under --json, restic's exit_error object) that says why.
      if (res.code !== 0) expect(jsonError(res), 'a failed backup says why').toMatch(/\S/);

      keepd = await startKeepd(data);
      const [report, listedNow] = await Promise.all([check(data), keepJson(['snapshots', '--source', 'big'], env()) as Promise<{ id: string }[]>]);
      expect(report.errors, `check after kill point "${point}"`).toEqual([]);
      expect(report.ok).toBe(true);
      expect(report.exit).toBe(0);

      const listed = listedNow.map((s) => s.id);
      for (const id of committed.keys()) expect(listed, `snapshot ${id} committed before kill point "${point}"`).toContain(id);
      const extra = listed.filter((id) => !committed.has(id));
      expect(extra.length, 'at most the interrupted backup appears').toBeLessThanOrEqual(1);
      if (res.code === 0) expect(extra).toEqual([summaryLine(res).snapshot]);
      const fresh = [...extra];
      for (const id of extra) remember(id, m);
      outcomes.push({ point, midBackup: midBackup && fired, sessionOpened, agentExit: res.code, committedAnyway: extra.length > 0 && res.code !== 0, orphanPacks: report.orphan_packs.length, unfinishedPacks: report.unfinished_packs });

      // The rerun completes (and sends only what keepd does not durably hold).
      const rr = await runKeep(backupArgs, env());
      expect(rr.code, `rerun after kill point "${point}": ${rr.stderr} ${keepdState(keepd)}`).toBe(0);
      const rerun = summaryLine(rr);
      expect(rerun.bytes_sent).toBeLessThanOrEqual(FILES * FILE_SIZE + MiB);
      remember(rerun.snapshot, m);
      fresh.push(rerun.snapshot);
      // These, and one older snapshot (round robin, so each is restored again after some later kill).
      const older = order.filter((id) => !fresh.includes(id));
      if (older.length) fresh.push(older[roundRobin++ % older.length]);
      await Promise.all(fresh.map(expectRestores));
    }

    const exercised = outcomes.filter((o) => o.midBackup);
    console.log(`gc-crash-keepd: baseline session ${Math.round(sessionMs)} ms; ${exercised.length} of ${outcomes.length} kill points hit a running backup; ${outcomes.filter((o) => o.committedAnyway).length} interrupted backups were durably committed anyway`);
    for (const o of outcomes) console.log(`  ${o.point.padEnd(16)} mid-backup=${o.midBackup} session-open=${o.sessionOpened} agent-exit=${o.agentExit} committed-anyway=${o.committedAnyway} orphan-packs=${o.orphanPacks} unfinished=${o.unfinishedPacks}`);
    expect(exercised.length, 'most kill points must land while the backup runs').toBeGreaterThanOrEqual(plan.length - 3);

    // Two hours later a prune collects the crash debris (orphan and tmp packs) and nothing live.
    const before = await check(data);
    const p = await prune(data, TWO_HOURS_MS);
    expect(p.snapshots).toBe(committed.size);
    // Each orphan goes: deleted when every blob in it is indexed elsewhere (the rerun sent them again), else adopted.
    expect(p.orphan_packs_deleted + p.orphan_packs_adopted).toBe(before.orphan_packs.length);
    const after = await check(data, true);
    expect(after.errors).toEqual([]);
    expect(after.ok).toBe(true);
    expect(after.orphan_packs).toEqual([]);
    expect(after.unfinished_packs).toBe(0);
    expect(after.snapshots).toBe(committed.size);
    const listed = ((await keepJson(['snapshots', '--source', 'big'], env())) as { id: string }[]).map((s) => s.id);
    expect(listed.sort()).toEqual([...committed.keys()].sort());
    for (let i = 0; i < order.length; i += 2) await Promise.all(order.slice(i, i + 2).map(expectRestores));
  }, 420_000); // ~80-110 s alone; a guard against a hang, not a speed check (twice that on a loaded machine)
});
