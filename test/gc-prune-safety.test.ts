/**
 * Issue 5, "must show" 4: prune safety basics.
 *
 * 1. A prune run right after a forget removes nothing: the forgotten
 *    snapshot's blobs are unreferenced but recent (GC grace), so they are
 *    reported as blobs_kept_recent and the pack files do not change. The same
 *    prune two hours later (KEEP_CLOCK_OFFSET_MS=7200000, no session open)
 *    removes them and the repository shrinks on disk; what is still
 *    referenced restores and check --read-data passes.
 * 2. Snapshots committed while prunes run are complete. Garbage is made two
 *    hours "ago" (keepd, agents and forget at a clock offset of -2 h), then
 *    keepd restarts at the present and a backup runs while prunes (same
 *    clock) sweep and repack that garbage during its session: first one
 *    prune while the agent is SIGSTOPped just after opening the session
 *    (the session is certainly open), then prunes back to back until the
 *    commit. The backup re-adds a file whose blobs are among the garbage
 *    (swept by the first prune, so they must be sent again; later offers
 *    race later sweeps). Done twice (-4 h -> -2 h, -2 h -> now). Every
 *    backup succeeds; check --read-data passes; every snapshot restores.
 *    (The world moves forward to "now", never past it: the file system's
 *    clock cannot be moved, and a prune hours ahead of it would see a live
 *    session's tmp pack as hours old.)
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MiB, summaryLine, tempDirs } from './helpers.js';
import { agentEnv, createToken, Keepd, keepdInit, keepJson, killAllKeepd, packBytes, startKeep, startKeepd } from './keepd-harness.js';
import { check, clockEnv, count, forget, manifest, pollUntil, prune, PruneReport, restoreManifest, TWO_HOURS_MS, writeRandom } from './gc-util.js';

describe('prune safety basics', () => {
  const tmp = tempDirs();
  afterAll(killAllKeepd);

  it('keeps unreferenced-but-recent blobs; two hours later collects them and the repository shrinks', async () => {
    const dir = tmp.make('keep-gc-safety-');
    const data = path.join(dir, 'data');
    const src = path.join(dir, 'src');
    const scratch = path.join(dir, 'scratch');
    fs.mkdirSync(scratch);
    await keepdInit(data);
    const token = (await createToken(data, 'agent', { sources: ['p'] })).token;
    const keepd = await startKeepd(data);
    const env = agentEnv(keepd, token);
    await keepJson(['init', '--kdf-cost', '12'], env);

    writeRandom(path.join(src, 'x.bin'), 3 * MiB);
    writeRandom(path.join(src, 'z.bin'), 2 * MiB);
    writeRandom(path.join(src, 'y.bin'), MiB);
    for (let i = 0; i < 20; i++) writeRandom(path.join(src, 'small', `s${i}`), 4096);
    const s1 = await keepJson(['backup', src, '--source', 'p', '--compression', 'none'], env);
    fs.rmSync(path.join(src, 'x.bin'));
    fs.rmSync(path.join(src, 'z.bin'));
    for (let i = 0; i < 20; i++) writeRandom(path.join(src, 'small', `s${i}`), 4096);
    const m2 = manifest(src);
    const s2 = await keepJson(['backup', src, '--source', 'p', '--compression', 'none'], env);
    const f = await forget(data, ['--source', 'p', '--keep-last', '1']);
    expect(f.groups[0].removed).toEqual([s1.snapshot]);

    const onDisk = packBytes(data);
    const now = await prune(data);
    expect(now.blobs_removed).toBe(0);
    expect(now.bytes_removed).toBe(0);
    expect(now.blobs_kept_recent, 'the forgotten snapshot\'s blobs are unreferenced but recent').toBeGreaterThanOrEqual(2 + 20 + 1);
    expect(now.bytes_after).toBe(now.bytes_before);
    expect(now.packs_deleted + now.packs_repacked).toBe(0);
    expect(packBytes(data)).toBe(onDisk);

    const dry = await prune(data, TWO_HOURS_MS, ['--dry-run']);
    expect(dry.dry_run).toBe(true);
    expect(dry.blobs_removed).toBeGreaterThan(0);
    expect(packBytes(data), 'a dry run changes nothing').toBe(onDisk);

    const later = await prune(data, TWO_HOURS_MS);
    expect(later.blobs_removed).toBe(dry.blobs_removed);
    expect(later.blobs_kept_recent).toBe(0);
    expect(later.bytes_removed).toBeGreaterThanOrEqual(5 * MiB);
    expect(later.bytes_after).toBeLessThan(later.bytes_before - 4 * MiB);
    expect(packBytes(data)).toBe(later.bytes_after);
    expect(packBytes(data)).toBeLessThan(onDisk - 4 * MiB);

    const report = await check(data, true);
    expect(report.errors).toEqual([]);
    expect(report.ok).toBe(true);
    const got = await restoreManifest(env, s2.snapshot, src, scratch);
    expect(got.ok ? got.manifest : got.stderr).toEqual(m2);
  });

  it('a snapshot committed while prunes sweep and repack old garbage is complete', async () => {
    const dir = tmp.make('keep-gc-safety-concurrent-');
    const data = path.join(dir, 'data');
    const src = path.join(dir, 'src');
    const scratch = path.join(dir, 'scratch');
    fs.mkdirSync(scratch);
    await keepdInit(data);
    const token = (await createToken(data, 'agent', { sources: ['q'] })).token;
    let offset = -2 * TWO_HOURS_MS;
    let keepd: Keepd = await startKeepd(data, { env: clockEnv(offset) });
    const env = () => agentEnv(keepd, token, undefined, clockEnv(offset));
    await keepJson(['init', '--kdf-cost', '12'], env());

    const taken = new Map<string, Record<string, string>>();
    const backup = async () => {
      const m = manifest(src);
      const b = await keepJson(['backup', src, '--source', 'q', '--compression', 'none'], env());
      taken.set(b.snapshot, m);
      return b.snapshot as string;
    };
    writeRandom(path.join(src, 'lasting.bin'), MiB);

    const prunes: PruneReport[] = [];
    for (let rep = 0; rep < 2; rep++) {
      // Garbage, made at the current offset: a file backed up once, then deleted, its snapshot forgotten.
      const revived = path.join(dir, `revived-${rep}.bin`);
      writeRandom(revived, 3 * MiB);
      fs.copyFileSync(revived, path.join(src, 'revived.bin'));
      for (let i = 0; i < 24; i++) writeRandom(path.join(src, 'small', `s${i}`), 4096);
      await backup();
      fs.rmSync(path.join(src, 'revived.bin'));
      for (let i = 0; i < 24; i++) writeRandom(path.join(src, 'small', `s${i}`), 4096);
      await backup();
      const f = await forget(data, ['--source', 'q', '--keep-last', '1'], offset);
      expect(f.groups[0].removed.length).toBeGreaterThan(0);
      for (const id of f.groups[0].removed) taken.delete(id);

      // Two hours later: restart keepd, back up again (the revived file plus 16 MiB of new data) while prunes run.
      await keepd.stop();
      offset += TWO_HOURS_MS;
      keepd = await startKeepd(data, { env: clockEnv(offset) });
      fs.copyFileSync(revived, path.join(src, 'revived.bin'));
      fs.rmSync(path.join(src, 'new'), { recursive: true, force: true });
      for (let i = 0; i < 4; i++) writeRandom(path.join(src, 'new', `n${i}.bin`), 4 * MiB);
      const m = manifest(src);
      const opened = count(keepd.output(), '"msg":"session opened"');
      const run = startKeep(['backup', src, '--source', 'q', '--compression', 'none', '--json'], env());
      let running = true;
      void run.result.then(() => (running = false));
      expect(await pollUntil(() => count(keepd.output(), '"msg":"session opened"') > opened, run.result), 'the session opens').toBe(true);
      // First a prune while the session is certainly open (the agent is stopped right after opening it): it sweeps
      // the old garbage, the revived file's blobs included, so the agent, continued, must send them again.
      run.child.kill('SIGSTOP');
      const p1 = await prune(data, offset);
      run.child.kill('SIGCONT');
      expect(p1.open_sessions).toBeGreaterThanOrEqual(1);
      expect(p1.blobs_removed, 'the old garbage is collected while the session is open').toBeGreaterThan(0);
      prunes.push(p1);
      // Then prunes back to back until the backup commits (offers racing sweeps, commit racing repack).
      while (running) prunes.push(await prune(data, offset));
      const res = await run.result;
      expect(res.code, `backup during prunes: ${res.stderr}`).toBe(0);
      const out = summaryLine(res);
      // The revived file's blobs were swept before the agent offered them: they crossed again.
      expect(out.bytes_sent).toBeGreaterThanOrEqual(16 * MiB + 3 * MiB);
      taken.set(out.snapshot, m);

      const report = await check(data, true);
      expect(report.errors).toEqual([]);
      expect(report.ok).toBe(true);
      const listed = ((await keepJson(['snapshots', '--source', 'q'], env())) as { id: string }[]).map((s) => s.id);
      expect(listed.sort()).toEqual([...taken.keys()].sort());
      for (const [id, want] of taken) {
        const got = await restoreManifest(env(), id, src, scratch);
        expect(got.ok ? got.manifest : got.stderr, `snapshot ${id}`).toEqual(want);
      }
      fs.rmSync(path.join(src, 'revived.bin'));
    }

    const during = prunes.filter((p) => p.open_sessions > 0);
    console.log(`gc-prune-safety: ${prunes.length} prunes, ${during.length} with the backup's session open; those removed ${during.reduce((n, p) => n + p.blobs_removed, 0)} blobs, repacked ${during.reduce((n, p) => n + p.packs_repacked, 0)} packs, ${during.reduce((n, p) => n + p.bytes_removed, 0)} bytes`);
    expect(during.length).toBeGreaterThanOrEqual(2);
  }, 120_000);
});
