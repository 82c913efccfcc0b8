/**
 * Storage alerts on a real 64 MiB tmpfs (tests run as root; skipped with the
 * reason when mount is not permitted): keepd's data directory fills with
 * backups of incompressible data, the watchdog (every 300 ms) raises the
 * storage alert `filling` from the observed growth rate, then `full` once
 * free space is below keepd's reserve (--min-free 16M), each delivered once
 * to a webhook; the next backup is refused with RESOURCE_EXHAUSTED at its
 * start, before any write, so no write ever meets ENOSPC; every snapshot
 * already stored still restores byte for byte and `keepd check` is clean.
 * Growth is judged over at least an hour of samples, so keepd is restarted
 * three hours later by its clock (KEEP_CLOCK_OFFSET_MS) rather than waiting.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MiB, prng, restoredPath, summaryLine, tempDirs } from './helpers.js';
import { agentEnv, createToken, Keepd, keepdInit, keepdJson, killAllKeepd, runKeep, runKeepd, startKeepd } from './keepd-harness.js';
import { Receiver, until } from './webhook-receiver.js';

const tmp = tempDirs();
const mounts: string[] = [];
const receiver = new Receiver();

/** A fresh 64 MiB tmpfs, or the reason there is none. */
function smallDisk(): string | { skip: string } {
  const mnt = path.join(tmp.make('keep-storage-alert-'), 'mnt');
  fs.mkdirSync(mnt);
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64m', 'tmpfs', mnt], { stdio: 'pipe' });
  } catch (e) {
    return { skip: `cannot mount a tmpfs here (${String((e as { stderr?: Buffer }).stderr ?? e).trim()}): the storage alert test needs root` };
  }
  mounts.push(mnt);
  return mnt;
}

afterAll(async () => {
  await killAllKeepd();
  await receiver.close();
  for (const m of mounts) execFileSync('umount', ['-l', m]);
});

const probe = smallDisk();
const skip = typeof probe === 'string' ? false : probe.skip;
if (skip) console.warn(`storage alert test skipped: ${skip}`);

const BACKUP = 8 * MiB;
const RESERVE = 16 * MiB;

describe.skipIf(skip)('a repository disk filling up', () => {
  const work = tmp.make('keep-storage-alert-src-');
  const mnt = probe as string;
  const data = path.join(mnt, 'data');
  const cfg = path.join(work, 'keepd.yaml');
  let keepd: Keepd;
  let env: Record<string, string | undefined>;
  let token: string;
  const serve = (offsetMs: number) => startKeepd(data, { args: ['--config', cfg, '--min-free', '16M'], env: offsetMs ? { KEEP_CLOCK_OFFSET_MS: String(offsetMs) } : {} });
  const storageState = async () => (await keepdJson(['status', '--data', data])).watchdog.states.find((s: any) => s.kind === 'storage')?.state as string | undefined;
  const delivered = (seq: number) => receiver.accepted('/hook', `storage/data:${seq}`)[0];
  const backups: { snapshot: string; seed: number; src: string }[] = [];
  const backup = async (seed: number) => {
    const src = path.join(work, `src-${seed}`);
    fs.mkdirSync(src);
    fs.writeFileSync(path.join(src, 'big.bin'), prng(seed, BACKUP));
    return runKeep(['backup', '--source', 'files', '--json', src], env).then((r) => ({ ...r, src, seed }));
  };

  it('alerts filling then full before the disk is out of space, refuses the next backup, and loses nothing', async () => {
    await receiver.listen();
    fs.writeFileSync(
      cfg,
      `watchdog: { interval: 300ms, hysteresis: 2, storage_warn_days: 1 }\nalerts:\n  retry_initial: 200ms\n  receivers: [{ name: hook, type: webhook, url: "http://127.0.0.1:${receiver.port}/hook" }]\n`,
    );
    await keepdInit(data);
    token = (await createToken(data, 'agent', { sources: ['files'] })).token;
    keepd = await serve(0);
    env = agentEnv(keepd, token);
    expect((await runKeep(['init', '--kdf-cost', '12'], env)).code).toBe(0);
    await until('the storage condition evaluated', async () => (await storageState()) === 'ok');
    for (const seed of [1, 2]) {
      const r = await backup(seed);
      expect(r.code, r.stderr).toBe(0);
      backups.push({ snapshot: summaryLine(r).snapshot, seed, src: r.src });
    }
    expect(await storageState()).toBe('ok'); // growth over seconds is no trend yet

    // Three hours later by keepd's clock: 16 MiB in 3 h leaves well under a day at that rate.
    await keepd.stop();
    keepd = await serve(3 * 3600_000);
    env = agentEnv(keepd, token, undefined, { KEEP_CLOCK_OFFSET_MS: String(3 * 3600_000) }); // the agent's clock moves along (keepd refuses a clock hours behind)
    await until('the filling alert', () => delivered(1), 40_000);
    expect(delivered(1).body).toMatchObject({ id: 'storage/data', kind: 'storage', condition: 'filling', severity: 1, state: 'firing' });
    expect(delivered(1).body.detail.days_to_full).toBeLessThan(1);
    expect(delivered(1).body.detail.free_bytes).toBeGreaterThan(RESERVE);

    // Backups go on until keepd refuses one: each either succeeds whole or is refused at its start.
    let refused: Awaited<ReturnType<typeof backup>> | undefined;
    for (let seed = 3; seed < 12 && !refused; seed++) {
      const r = await backup(seed);
      if (r.code === 0) backups.push({ snapshot: summaryLine(r).snapshot, seed, src: r.src });
      else refused = r;
    }
    expect(refused, 'a backup refused once the disk is below the reserve').toBeDefined();
    expect(refused!.code, refused!.stderr).toBe(1);
    expect(refused!.stderr).toMatch(/repository disk full: \d+ bytes free .*below keepd's reserve of \d+ bytes/);
    expect(keepd.output()).toMatch(/"code":"RESOURCE_EXHAUSTED"/);
    expect(keepd.output()).not.toMatch(/ENOSPC/);
    expect(keepd.exited()).toBeUndefined();
    expect(backups.length).toBeGreaterThanOrEqual(4);

    await until('the full alert', () => delivered(2), 40_000);
    expect(delivered(2).body).toMatchObject({ id: 'storage/data', condition: 'full', severity: 2, state: 'firing', from: 'filling' });
    expect(delivered(2).body.detail.free_bytes).toBeLessThan(RESERVE);
    expect(delivered(2).body.detail.free_bytes).toBeGreaterThan(0);
    const alerts = await keepdJson(['alerts', '--data', data]);
    expect(alerts.active.find((a: any) => a.id === 'storage/data')).toMatchObject({ condition: 'full', severity: 2 });
    // one delivery per transition
    expect(receiver.seen.filter((r) => r.body.id === 'storage/data' && r.status === 200).map((r) => r.key)).toEqual(['storage/data:1', 'storage/data:2']);

    // Nothing stored is lost: every snapshot restores byte for byte, and the repository checks clean.
    for (const b of [backups[0], backups[backups.length - 1]]) {
      const target = path.join(work, `restored-${b.seed}`);
      const rs = await runKeep(['restore', b.snapshot, '--target', target], env);
      expect(rs.code, rs.stderr).toBe(0);
      expect(fs.readFileSync(restoredPath(target, path.join(b.src, 'big.bin'))).equals(prng(b.seed, BACKUP))).toBe(true);
    }
    await keepd.stop();
    const check = await runKeepd(['check', '--data', data, '--json']);
    expect(check.code, check.stdout + check.stderr).toBe(0);
    expect(JSON.parse(check.stdout).errors).toEqual([]);
  }, 300_000);
});
