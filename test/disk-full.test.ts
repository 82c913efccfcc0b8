/**
 * A full repository disk, on a real 20 MiB tmpfs (tests run as root; skipped
 * with the reason when mount is not permitted): keepd stays up and answers
 * RESOURCE_EXHAUSTED, no pack is left without its trailer, new sessions are
 * refused below the free-space reserve, free space is a metric, and the next
 * backup after space is freed succeeds. The embedded agent reports the
 * repository's ENOSPC as a repository error, never as a source-file warning.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MiB, prng, restoredPath, tempDirs } from './helpers.js';
import { agentEnv, createToken, Keepd, keepdInit, killAllKeepd, RawClient, runKeep, runKeepd, startKeepd, wire } from './keepd-harness.js';

const tmp = tempDirs();
const mounts: string[] = [];

/** A fresh 20 MiB tmpfs, or the reason there is none. */
function smallDisk(): string | { skip: string } {
  const dir = tmp.make('keep-diskfull-');
  const mnt = path.join(dir, 'mnt');
  fs.mkdirSync(mnt);
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=20m', 'tmpfs', mnt], { stdio: 'pipe' });
  } catch (e) {
    return { skip: `cannot mount a tmpfs here (${String((e as { stderr?: Buffer }).stderr ?? e).trim()}): the full-disk tests need root` };
  }
  mounts.push(mnt);
  return mnt;
}

afterAll(async () => {
  await killAllKeepd();
  for (const m of mounts) execFileSync('umount', ['-l', m]);
});

const probe = smallDisk();
const skip = typeof probe === 'string' ? false : probe.skip;
if (skip) console.warn(`disk-full tests skipped: ${skip}`);

const free = (dir: string) => {
  const s = fs.statfsSync(dir);
  return s.bavail * s.bsize;
};

/** Fill `dir`'s file system until `leave` bytes are free (a filler file; ENOSPC ends it early). */
function fill(file: string, leave: number): void {
  const fd = fs.openSync(file, 'a');
  const block = Buffer.alloc(64 * 1024, 0x5a);
  try {
    for (let f = free(path.dirname(file)); f > leave; f = free(path.dirname(file))) fs.writeSync(fd, block, 0, Math.min(block.length, Math.max(4096, f - leave)));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
  } finally {
    fs.closeSync(fd);
  }
}

/** The files under a backup source, as bytes by name. */
function source(dir: string, seed: number, size: number): string {
  const src = path.join(dir, `src-${seed}`);
  fs.mkdirSync(src);
  fs.writeFileSync(path.join(src, 'big.bin'), prng(seed, size));
  fs.writeFileSync(path.join(src, 'small.txt'), `seed ${seed}\n`);
  return src;
}

/** The data directory's packs: none lacks its trailer (keepd check), and tmp/ holds no partial pack. */
async function checkClean(data: string): Promise<void> {
  const r = await runKeepd(['check', '--data', data, '--json']);
  expect(r.code, `keepd check: ${r.stdout}\n${r.stderr}`).toBe(0);
  expect(JSON.parse(r.stdout).errors).toEqual([]);
}

describe.skipIf(skip)('keepd on a full disk', () => {
  const work = tmp.make('keep-diskfull-src-');
  let keepd: Keepd;

  it('answers RESOURCE_EXHAUSTED, stays up, keeps packs whole, refuses sessions below the reserve, and the next backup succeeds once space is freed', async () => {
    const mnt = probe as string;
    const data = path.join(mnt, 'data');
    await keepdInit(data);
    const agent = await createToken(data, 'agent', { sources: ['db'] });
    keepd = await startKeepd(data, { metrics: true });
    const env = agentEnv(keepd, agent.token);
    expect((await runKeep(['init', '--kdf-cost', '12'], env)).code).toBe(0);

    // 8 MiB of the disk taken by something else; the backup is 14 MB of incompressible data.
    const filler = path.join(mnt, 'filler');
    fill(filler, free(mnt) - 8 * MiB);
    const src = source(work, 7, 14 * 1000 * 1000);
    const failed = await runKeep(['backup', '--source', 'db', src], env);
    expect(failed.code, failed.stderr).toBe(1);
    expect(failed.stderr).toMatch(/^keep: error: .*repository disk full: \d+ bytes free/m);
    expect(failed.stderr).not.toMatch(/warning/);
    expect(keepd.exited(), keepd.output().slice(-3000)).toBeUndefined();
    expect(keepd.output()).toMatch(/"code":"RESOURCE_EXHAUSTED"/);
    await checkClean(data);

    // The disk all but full: below the default reserve (2%), no session starts; free space is a metric.
    const filler2 = path.join(mnt, 'filler2');
    fill(filler2, 64 * 1024);
    const refused = await runKeep(['backup', '--source', 'db', src], env);
    expect(refused.code, refused.stderr).toBe(1);
    expect(refused.stderr).toMatch(/repository disk full: \d+ bytes free .*below keepd's reserve of \d+ bytes/);
    const metrics = await (await fetch(`http://127.0.0.1:${keepd.metricsPort}/metrics`)).text();
    const gauge = (name: string) => Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(metrics)?.[1]);
    expect(gauge('keep_storage_free_bytes')).toBeLessThan(gauge('keep_storage_reserve_bytes'));
    expect(gauge('keep_storage_total_bytes')).toBeGreaterThan(19 * MiB);
    expect(keepd.exited()).toBeUndefined();

    // Space freed: the next backup succeeds and restores byte for byte.
    fs.rmSync(filler);
    fs.rmSync(filler2);
    const ok = await runKeep(['backup', '--source', 'db', src], env);
    expect(ok.code, ok.stderr).toBe(0);
    const target = path.join(work, 'restored');
    const rs = await runKeep(['restore', 'latest', '--source', 'db', '--target', target], env);
    expect(rs.code, rs.stderr).toBe(0);
    expect(fs.readFileSync(restoredPath(target, path.join(src, 'big.bin'))).equals(prng(7, 14 * 1000 * 1000))).toBe(true);
    await keepd.stop();
    await checkClean(data);
  }, 240_000);

  it('an index write that fails for lack of space is RESOURCE_EXHAUSTED, not a crash, and the index works once space is back', async () => {
    const mnt = smallDisk() as string;
    const data = path.join(mnt, 'data');
    await keepdInit(data);
    const agent = await createToken(data, 'agent', { sources: ['s'] });
    // No reserve: every OpenSession writes a session record to LMDB until the disk has no page left for it.
    keepd = await startKeepd(data, { args: ['--min-free', '0'] });
    const { grpc, protobuf, proto } = await wire();
    const enc = (schema: string, v: object) => protobuf.toBinary(proto[schema], protobuf.create(proto[schema], v));
    const c = new RawClient(grpc, `127.0.0.1:${keepd.port}`, agent.token);
    try {
      fill(path.join(mnt, 'filler'), 0);
      let failure: { code: number; details: string } | undefined;
      for (let i = 0; i < 3000 && !failure; i++) {
        const r = await c.unary('OpenSession', enc('OpenSessionRequestSchema', { source: 's', host: `h${i}` }));
        if (!r.ok) failure = r;
      }
      expect(failure, 'an OpenSession on a full disk should fail').toBeDefined();
      expect(failure!.code, failure!.details).toBe(grpc.status.RESOURCE_EXHAUSTED);
      expect(failure!.details).toMatch(/repository disk full: \d+ bytes free/);
      expect(keepd.exited(), keepd.output().slice(-3000)).toBeUndefined();

      fs.rmSync(path.join(mnt, 'filler'));
      const again = await c.unary('OpenSession', enc('OpenSessionRequestSchema', { source: 's', host: 'after' }));
      expect(again.ok, JSON.stringify(again)).toBe(true);
    } finally {
      c.close();
    }
    await keepd.stop();
    await checkClean(data);
  }, 240_000);
});

describe.skipIf(skip)('the embedded agent on a full disk', () => {
  const work = tmp.make('keep-diskfull-src-');

  it('reports the repository ENOSPC as a fatal repository error (exit 1), not a file warning, and does not crash', async () => {
    const mnt = smallDisk() as string;
    const env = { KEEP_REPO: path.join(mnt, 'repo'), KEEP_PASSWORD: 'embedded disk full' };
    expect((await runKeep(['init', '--kdf-cost', '12'], env)).code).toBe(0);
    const filler = path.join(mnt, 'filler');
    fill(filler, free(mnt) - 8 * MiB);
    const src = source(work, 8, 14 * 1000 * 1000);
    const failed = await runKeep(['backup', '--source', 'files', src], env);
    expect(failed.signal).toBeNull();
    expect(failed.code, failed.stderr).toBe(1);
    expect(failed.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^keep: error: repository disk full: \d+ bytes free/)]);
    await checkClean(env.KEEP_REPO);

    fs.rmSync(filler);
    const ok = await runKeep(['backup', '--source', 'files', src], env);
    expect(ok.code, ok.stderr).toBe(0);
    await checkClean(env.KEEP_REPO);
  }, 240_000);
});
