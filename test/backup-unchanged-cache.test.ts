/**
 * Directories known unchanged without reading their trees (agent/src/backup/unchanged.ts):
 * after a clean backup the agent remembers, per directory, a MAC of its tree id and of the
 * file system's answers below it; the next backup takes a directory whose answers are the
 * same without fetching or decrypting its tree. What must hold: the snapshot is the one a
 * full walk makes, every change is still seen (however small, however deep), a damaged or
 * forged cache is never trusted, and nothing secret is written.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { SealedTrees } from '@keep/agent/dist/backup/sealed-trees.js';
import { LocalConnection } from '@keep/agent/dist/repo/local.js';
import { compareTrees, generateTree, keep, keepJson, restoredPath, summaryLine, tempDirs } from './helpers.js';

const dirs = tempDirs();

describe('unchanged directories of a re-backup', () => {
  const dir = dirs.make('unchanged-cache-');
  const src = path.join(dir, 'src');
  const cache = path.join(dir, 'cache');
  const password = 'unchanged cache passphrase';
  const env = { KEEP_REPO: path.join(dir, 'repo'), KEEP_PASSWORD: password, KEEP_CACHE_DIR: cache };
  generateTree(src, { smallFiles: 80, largeFiles: [200_000], compressibleSize: 50_000 });
  const deep = path.join(src, 'a', 'b', 'c');
  fs.mkdirSync(deep, { recursive: true });
  fs.writeFileSync(path.join(deep, 'leaf-with-a-telling-name.txt'), 'deep leaf\n');
  let n = 0;

  /** Back up with timing marks on: the JSON report, and how many directories were taken unread. */
  async function backup(extra: Record<string, string> = {}): Promise<{ b: any; taken: number; stderr: string }> {
    const r = await keep(['backup', src, '--json'], { env: { ...env, KEEP_DEBUG_TIMING: '1', ...extra } });
    expect(r.code, r.stderr).toBe(0);
    const taken = /unchanged: (\d+) directories taken unread/.exec(r.stderr);
    return { b: summaryLine(r), taken: taken ? Number(taken[1]) : -1, stderr: r.stderr };
  }

  /** The snapshot restores to exactly the source. */
  async function restoresExactly(snapshot: string): Promise<void> {
    const target = path.join(dir, `restore-${++n}`);
    await keepJson(['restore', snapshot, '--target', target], { env });
    expect(compareTrees(src, restoredPath(target, src))).toEqual([]);
  }

  /** What `keep ls` shows of src in a snapshot (names, types, modes, sizes, times). */
  async function listing(snapshot: string): Promise<unknown> {
    return keepJson(['ls', snapshot, src], { env });
  }

  it('an unchanged source is taken unread, and the snapshot is the one a full walk makes', async () => {
    await keepJson(['init', '--kdf-cost', '12'], { env });
    const first = await backup();
    expect(first.taken).toBe(0);
    const again = await backup();
    expect(again.taken).toBeGreaterThanOrEqual(1); // src itself: nothing below it was asked about
    expect(again.b).toMatchObject({ files_new: 0, files_changed: 0, files_unmodified: first.b.files_new, bytes_read: 0 });
    const walked = await backup({ KEEP_NO_UNCHANGED_CACHE: '1' });
    expect(walked.taken).toBe(0);
    for (const k of ['files_unmodified', 'dirs', 'bytes']) expect(again.b[k], k).toBe(walked.b[k]);
    expect(await listing(again.b.snapshot)).toEqual(await listing(walked.b.snapshot));
    await restoresExactly(again.b.snapshot);
  });

  it('the parent\'s trees still being fetched when the walk ends are waited for, and none is asked for after', async () => {
    // The walk of an unchanged source ends while levels are fetched: a read racing the
    // embedded repository's close crashed the agent from lmdb-js's read-txn timer (CI, once).
    const [latest] = (await keepJson(['snapshots'], { env })).slice(-1);
    const conn = await LocalConnection.open(env.KEEP_REPO);
    let closing = false;
    let askedAfter = 0;
    const counting = new Proxy(conn, {
      get(target, key) {
        if (key === 'getBlob') return (id: Buffer) => ((askedAfter += closing ? 1 : 0), target.getBlob(id));
        const v = Reflect.get(target, key, target) as unknown;
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
    const trees = new SealedTrees(counting);
    trees.fetchBelow(Buffer.from(latest.tree, 'hex')); // src/a/b/c: levels below the root
    await trees.close();
    closing = true;
    await new Promise((r) => setTimeout(r, 100));
    await conn.close();
    expect(askedAfter).toBe(0);
    await expect(conn.getBlob(Buffer.from(latest.tree, 'hex'))).rejects.toThrow(/repository is closed/);
  });

  it('every change is still seen, however small or deep', async () => {
    const leaf = path.join(deep, 'leaf-with-a-telling-name.txt');
    const changes: Array<[string, () => void]> = [
      ['same size and mtime, new content (the ctime moves)', () => {
        const st = fs.statSync(leaf);
        fs.writeFileSync(leaf, 'DEEP LEAF\n');
        fs.utimesSync(leaf, st.atime, st.mtime);
      }],
      ['a mode', () => fs.chmodSync(leaf, 0o600)],
      ['a new file', () => fs.writeFileSync(path.join(deep, 'new.txt'), 'new\n')],
      ['a removed file', () => fs.rmSync(path.join(deep, 'new.txt'))],
      ['a new empty directory', () => fs.mkdirSync(path.join(deep, 'empty'))],
      ['a symlink pointed elsewhere', () => {
        fs.symlinkSync('leaf-with-a-telling-name.txt', path.join(deep, 'link'));
      }],
      ['…and elsewhere again', () => {
        fs.rmSync(path.join(deep, 'link'));
        fs.symlinkSync('../../b', path.join(deep, 'link'));
      }],
      ['a directory renamed', () => fs.renameSync(path.join(src, 'a', 'b'), path.join(src, 'a', 'B'))],
      ['…and back', () => fs.renameSync(path.join(src, 'a', 'B'), path.join(src, 'a', 'b'))],
    ];
    for (const [what, change] of changes) {
      await backup(); // remembered as the parent
      change();
      const after = await backup();
      expect(after.taken, `${what}: the directories beside the change are taken unread`).toBeGreaterThan(0);
      const walked = await backup({ KEEP_NO_UNCHANGED_CACHE: '1' });
      expect(await listing(after.b.snapshot), what).toEqual(await listing(walked.b.snapshot));
      await restoresExactly(after.b.snapshot);
    }
  });

  it('a damaged or forged cache is never trusted', async () => {
    await backup();
    const file = fs.readdirSync(cache).find((f) => f.startsWith('unchanged-'))!;
    const good = fs.readFileSync(path.join(cache, file));
    expect(good.length).toBeGreaterThan(24 + 64);
    // every MAC altered: nothing may be taken unread
    const forged = Buffer.from(good);
    for (let o = 24 + 32; o < forged.length; o += 64) forged[o] ^= 1;
    fs.writeFileSync(path.join(cache, file), forged);
    fs.appendFileSync(path.join(deep, 'leaf-with-a-telling-name.txt'), 'more\n');
    const r = await backup();
    expect(r.taken).toBe(0);
    expect(r.b.files_changed).toBe(1);
    await restoresExactly(r.b.snapshot);
    // not a cache at all
    fs.writeFileSync(path.join(cache, file), 'garbage');
    const g = await backup();
    expect(g.taken).toBe(0);
    await restoresExactly(g.b.snapshot);
  });

  it('a special file keeps the cache from being written (the walk skips it, with a warning)', async () => {
    const fifo = path.join(src, 'a', 'fifo');
    const { execFileSync } = await import('node:child_process');
    execFileSync('mkfifo', [fifo]);
    try {
      const first = await backup();
      expect(first.b.warnings.join('\n')).toMatch(/special file/);
      const again = await backup();
      expect(again.b.warnings.join('\n')).toMatch(/special file/);
      expect(again.taken).toBe(0);
      const walked = await backup({ KEEP_NO_UNCHANGED_CACHE: '1' });
      expect(await listing(again.b.snapshot)).toEqual(await listing(walked.b.snapshot));
    } finally {
      fs.rmSync(fifo);
    }
  });

  it('the cache directory holds nothing secret', async () => {
    await backup();
    await backup();
    const files = fs.readdirSync(cache).filter((f) => f.startsWith('unchanged-'));
    expect(files).toHaveLength(1);
    for (const f of fs.readdirSync(cache)) {
      const p = path.join(cache, f);
      expect(fs.statSync(p).mode & 0o077, f).toBe(0);
      const bytes = fs.readFileSync(p);
      expect(bytes.includes(password), f).toBe(false);
      expect(bytes.includes('leaf-with-a-telling-name'), f).toBe(false);
    }
  });
});
