/**
 * Issue 5, "must show" 1: forget and prune in a loop while three agents back
 * up concurrently over gRPC, and nothing a snapshot needs is ever lost.
 *
 * Three agents (three sources, one source-scoped token each) each take six
 * backups of a directory they mutate in between (files added, rewritten,
 * deleted; a 1-2 MiB scratch file rewritten every time, so every pack soon
 * holds mostly garbage). Meanwhile a loop runs `keepd forget --source X
 * --keep-last 2` and `keepd prune` back to back until the agents finish, and
 * restores a random listed snapshot now and then (ReadBlobs racing repack).
 * In each round one of alpha's backups is SIGSTOPped right after keepd opens
 * its session and continued once a prune started after that has finished, so
 * prunes certainly sweep and repack while sessions are open (the others
 * overlap by chance).
 *
 * Time: a prune collects only blobs last seen more than GC_GRACE (1 h) + slack
 * ago, so the test moves time with KEEP_CLOCK_OFFSET_MS, for the whole world
 * at once: the backups run in three rounds, keepd is restarted before each,
 * and the keepd, agents, forget and prune of round r all run at the same
 * offset, two hours after round r-1 (offsets -4 h, -2 h, 0). So every prune
 * sees the blobs of snapshots forgotten in earlier rounds as two hours old and
 * collects them, while it runs concurrently with live sessions whose leases,
 * touched blobs and tmp packs it sees as live and fresh, as in production.
 * The rounds go forward to "now" rather than from now into the future: the
 * file system's clock cannot be moved, and a prune running hours ahead of
 * it sees every tmp pack a live session is filling as hours old.
 * (A prune two hours ahead of a keepd that serves live sessions is clock skew
 * far beyond GC_CLOCK_SLACK: to it every lease ended long ago.)
 *
 * At the end every listed snapshot restores byte-identical to the manifest
 * recorded when it was taken, every backup succeeded, keepd check
 * --read-data passes and some prune freed pack bytes.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { summaryLine, tempDirs } from './helpers.js';
import { agentEnv, createToken, Keepd, keepdInit, keepJson, killAllKeepd, runKeep, runKeepd, startKeep, startKeepd } from './keepd-harness.js';
import { check, clockEnv, ForgetResult, keepdState, manifest, pollUntil, PruneReport, randInt, restoreManifest, seeded, TWO_HOURS_MS, writeRandom } from './gc-util.js';

const SOURCES = ['alpha', 'beta', 'gamma'] as const;
type Source = (typeof SOURCES)[number];
const ROUNDS = 3;
const BACKUPS_PER_ROUND = 2;
const KiB = 1024;

interface Taken {
  source: Source;
  dir: string;
  round: number;
  manifest: Record<string, string>;
}

/** One agent's directory and its seeded mutations. */
class Workload {
  private readonly files: string[] = [];
  private n = 0;
  constructor(
    readonly dir: string,
    private readonly r: () => number,
  ) {}

  private write(rel: string, size: number): void {
    writeRandom(path.join(this.dir, rel), size);
    if (!this.files.includes(rel)) this.files.push(rel);
  }

  /** Change the directory the way a live file system changes between backups. */
  mutate(): void {
    if (this.n++ === 0) {
      for (let i = 0; i < 10; i++) this.write(`f${i}.bin`, randInt(this.r, 16, 256) * KiB);
      for (let i = 0; i < 4; i++) this.write(`sub/s${i}.bin`, randInt(this.r, 8, 128) * KiB);
      fs.mkdirSync(path.join(this.dir, 'empty'), { recursive: true });
      writeRandom(path.join(this.dir, 'scratch.bin'), randInt(this.r, 1024, 2048) * KiB);
      return;
    }
    // The scratch file is rewritten every time: its old content becomes garbage once its snapshot is forgotten.
    writeRandom(path.join(this.dir, 'scratch.bin'), randInt(this.r, 1024, 2048) * KiB);
    // Rewrite two files (new sizes, so change detection cannot miss them), add one, delete one.
    for (let k = 0; k < 2; k++) this.write(this.files[randInt(this.r, 0, this.files.length - 1)], randInt(this.r, 16, 320) * KiB);
    this.write(this.r() < 0.5 ? `n${this.n}.bin` : `sub/n${this.n}.bin`, randInt(this.r, 64, 512) * KiB);
    if (this.files.length > 8) {
      const victim = this.files.splice(randInt(this.r, 0, this.files.length - 1), 1)[0];
      fs.rmSync(path.join(this.dir, victim));
    }
  }
}

describe('forget + prune in a loop while three agents back up over gRPC', () => {
  const tmp = tempDirs();
  afterAll(killAllKeepd);

  it('loses nothing: every listed snapshot restores byte-identical, all backups succeed, check --read-data passes', async () => {
    const dir = tmp.make('keep-gc-concurrent-');
    const data = path.join(dir, 'data');
    const scratch = path.join(dir, 'scratch');
    fs.mkdirSync(scratch);
    await keepdInit(data);
    const tokens = {} as Record<Source, string>;
    for (const s of SOURCES) tokens[s] = (await createToken(data, 'agent', { sources: [s] })).token;
    const admin = (await createToken(data, 'admin')).token;

    // The world's clock: keepd, agents, forget and prune of round r all run at (r - ROUNDS + 1) * 2 h.
    const offsetOf = (round: number) => (round - ROUNDS + 1) * TWO_HOURS_MS;
    let offset = offsetOf(0);
    let keepd: Keepd = await startKeepd(data, { env: clockEnv(offset) });
    const env = (token: string) => agentEnv(keepd, token, undefined, clockEnv(offset));
    await keepJson(['init', '--kdf-cost', '12'], env(tokens.alpha));

    const rand = seeded(0x6c0ffee);
    const work = {} as Record<Source, Workload>;
    for (const [i, s] of SOURCES.entries()) work[s] = new Workload(path.join(dir, `src-${s}`), seeded(1000 + i));

    const taken = new Map<string, Taken>();
    const backupFailures: string[] = [];
    const loopFailures: string[] = [];
    const prunes: (PruneReport & { startIndex: number })[] = [];
    let pruneStarts = 0;
    let held = 0;
    const forgets: ForgetResult[] = [];
    /** bumped when keepd goes down for a restart and again when it is back (a call cut by it is not a failure) */
    let generation = 0;
    let restarting = false;
    const cutByRestart = (gen: number) => restarting || gen !== generation;
    let loopRestores = 0;
    let loopRestoresSkipped = 0;

    const sessionsOpened = (s: Source) => keepd.output().split('\n').filter((l) => l.includes('"msg":"session opened"') && l.includes(`"source":"${s}"`)).length;

    /**
     * One backup. With `hold`, the agent is SIGSTOPped as soon as keepd has opened its session and continued only
     * once a prune that started after that has finished: at least one prune per round certainly runs (sweeps,
     * repacks) while a session is open.
     */
    async function backupOnce(s: Source, round: number, hold = false): Promise<void> {
      work[s].mutate();
      const m = manifest(work[s].dir);
      const k = keepd;
      const opened = sessionsOpened(s);
      const run = startKeep(['backup', work[s].dir, '--source', s, '--compression', 'none', '--json'], env(tokens[s]));
      if (hold && (await pollUntil(() => sessionsOpened(s) > opened, run.result))) {
        run.child.kill('SIGSTOP');
        const mark = pruneStarts;
        await pollUntil(() => prunes.some((p) => p.startIndex >= mark) || loopFailures.length > 0, new Promise(() => undefined), 20);
        run.child.kill('SIGCONT');
        held++;
      }
      const r = await run.result;
      if (r.code !== 0) {
        backupFailures.push(`${s} round ${round}: exit ${r.code}: ${r.stderr.trim()} ${keepdState(k)}`);
        return;
      }
      const out = summaryLine(r);
      taken.set(out.snapshot, { source: s, dir: work[s].dir, round, manifest: m });
    }

    // The maintenance loop: forget one source (rotating) and prune, back to back, until the agents finish.
    let agentsDone = false;
    const maintenance = (async () => {
      for (let i = 0; !agentsDone; i++) {
        const at = offset;
        const source = SOURCES[i % SOURCES.length];
        const f = await runKeepd(['forget', '--data', data, '--source', source, '--keep-last', '2', '--json'], { env: clockEnv(at) });
        if (f.code !== 0) loopFailures.push(`forget ${source}: exit ${f.code}: ${f.stderr.trim()}`);
        else forgets.push(JSON.parse(f.stdout));
        // Prune twice per forget: prunes are what this test is about.
        for (let k = 0; k < 2; k++) {
          const startIndex = pruneStarts++;
          const p = await runKeepd(['prune', '--data', data, '--json'], { env: clockEnv(at) });
          if (p.code !== 0) loopFailures.push(`prune: exit ${p.code}: ${p.stderr.trim()}`);
          else prunes.push({ ...JSON.parse(p.stdout), startIndex });
        }
      }
    })();

    // Meanwhile restore a random listed snapshot, again and again: ReadBlobs racing sweeps and repacks.
    const restores = (async () => {
      while (!agentsDone) {
        const gen = generation;
        const k = keepd;
        const listed = await runKeep(['snapshots', '--json'], agentEnv(k, admin));
        if (listed.code !== 0) {
          if (!cutByRestart(gen)) loopFailures.push(`snapshots: exit ${listed.code}: ${listed.stderr.trim()} ${keepdState(k)}`);
          continue;
        }
        const ids = (JSON.parse(listed.stdout) as { id: string }[]).map((s) => s.id).filter((id) => taken.has(id));
        if (ids.length === 0) {
          await new Promise((r) => setTimeout(r, 100));
          continue;
        }
        const id = ids[randInt(rand, 0, ids.length - 1)];
        const t = taken.get(id)!;
        const got = await restoreManifest(agentEnv(k, admin), id, t.dir, scratch);
        if (got.ok) {
          loopRestores++;
          if (JSON.stringify(got.manifest) !== JSON.stringify(t.manifest)) loopFailures.push(`restore of ${id} (${t.source}, round ${t.round}) during the loop differs from its manifest`);
          await new Promise((r) => setTimeout(r, 250));
          continue;
        }
        // Legitimate only if keepd was restarting or the snapshot was forgotten meanwhile.
        if (cutByRestart(gen)) {
          loopRestoresSkipped++;
          continue;
        }
        const still = await runKeep(['snapshots', '--json'], agentEnv(k, admin));
        const gone = still.code === 0 && !(JSON.parse(still.stdout) as { id: string }[]).some((s) => s.id === id);
        if (gone || cutByRestart(gen)) loopRestoresSkipped++;
        else loopFailures.push(`restore of listed snapshot ${id} failed: ${got.stderr.trim()} ${keepdState(k)}`);
      }
    })();

    try {
      for (let round = 0; round < ROUNDS; round++) {
        if (round > 0) {
          // Two hours later: stop keepd (no session is open between rounds), then move every clock.
          restarting = true;
          generation++;
          expect(await keepd.stop()).toEqual({ code: 0, signal: null });
          offset = offsetOf(round);
          keepd = await startKeepd(data, { env: clockEnv(offset) });
          generation++;
          restarting = false;
        }
        await Promise.all(
          SOURCES.map(async (s) => {
            for (let b = 0; b < BACKUPS_PER_ROUND; b++) await backupOnce(s, round, s === 'alpha' && b === 0);
          }),
        );
      }
    } finally {
      agentsDone = true;
      await Promise.all([maintenance, restores]);
    }

    // One last forget and prune, then everything that is still listed must restore.
    for (const s of SOURCES) forgets.push(JSON.parse((await runKeepd(['forget', '--data', data, '--source', s, '--keep-last', '2', '--json'], { env: clockEnv(offset) })).stdout));
    const last = await runKeepd(['prune', '--data', data, '--json'], { env: clockEnv(offset) });
    expect(last.code, last.stderr).toBe(0);
    prunes.push(JSON.parse(last.stdout));

    const removedByForget = forgets.flatMap((f) => f.groups.flatMap((g) => g.removed));
    const shrank = prunes.filter((p) => p.bytes_after < p.bytes_before);
    const summary = {
      backups: taken.size,
      prunes: prunes.length,
      prunes_that_freed_bytes: shrank.length,
      prunes_during_open_sessions: prunes.filter((p) => p.open_sessions > 0).length,
      blobs_removed: prunes.reduce((n, p) => n + p.blobs_removed, 0),
      bytes_freed: prunes.reduce((n, p) => n + (p.bytes_before - p.bytes_after), 0),
      packs_repacked: prunes.reduce((n, p) => n + p.packs_repacked, 0),
      packs_deleted: prunes.reduce((n, p) => n + p.packs_deleted, 0),
      forget_runs: forgets.length,
      snapshots_forgotten: removedByForget.length,
      loop_restores: loopRestores,
      loop_restores_skipped: loopRestoresSkipped,
      backups_held_open_across_a_prune: held,
    };
    console.log(`gc-concurrent: ${JSON.stringify(summary)}`);

    expect(backupFailures, 'every backup must succeed').toEqual([]);
    expect(loopFailures, 'forget, prune and restores in the loop').toEqual([]);
    expect(taken.size).toBe(SOURCES.length * ROUNDS * BACKUPS_PER_ROUND);
    expect(removedByForget.length).toBeGreaterThan(0);
    expect(shrank.length, 'some prune must free pack bytes').toBeGreaterThan(0);
    expect(held, 'one backup per round is held open across a prune').toBe(ROUNDS);
    expect(summary.prunes_during_open_sessions, 'prunes must have overlapped backups').toBeGreaterThanOrEqual(ROUNDS);
    for (const id of removedByForget) expect(taken.has(id)).toBe(true);

    const report = await check(data, true);
    expect(report.errors).toEqual([]);
    expect(report.ok).toBe(true);
    expect(report.exit).toBe(0);

    for (const s of SOURCES) {
      const listed = (await keepJson(['snapshots', '--source', s], env(tokens[s]))) as { id: string }[];
      expect(listed.length, `source ${s} keeps its last 2`).toBe(2);
      for (const { id } of listed) {
        const t = taken.get(id);
        expect(t, `listed snapshot ${id} was taken by this test`).toBeDefined();
        expect(t!.source).toBe(s);
        const got = await restoreManifest(env(tokens[s]), id, t!.dir, scratch);
        expect(got.ok ? 'restored' : got.stderr).toBe('restored');
        if (got.ok) expect(got.manifest, `snapshot ${id} of ${s}, round ${t!.round}`).toEqual(t!.manifest);
      }
    }
  }, 400_000);
});
