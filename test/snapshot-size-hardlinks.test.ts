/**
 * A snapshot's size counts each hardlinked inode once (restic's restore
 * size), whether the backup reads the files, reuses them from the parent, or
 * takes whole directories unread from the unchanged-directory cache.
 */
import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { initRepo, keepJson, prng, tempDirs } from './helpers.js';

describe('snapshot size with hardlinks', () => {
  const tmp = tempDirs();
  let env: Record<string, string>;
  let src: string;
  let cache: string;
  /** bytes of the distinct inodes below src */
  const UNIQUE = 300_000 + 50_000 + 7;

  beforeAll(async () => {
    const base = tmp.make('keep-hardlink-size-');
    ({ env } = await initRepo(base));
    cache = path.join(base, 'cache');
    env = { ...env, XDG_CACHE_HOME: cache };
    src = path.join(base, 'src');
    fs.mkdirSync(path.join(src, 'a'), { recursive: true });
    fs.mkdirSync(path.join(src, 'b'));
    fs.writeFileSync(path.join(src, 'a', 'big'), prng(1, 300_000));
    // three names for one inode: two in the same directory, one in another
    fs.linkSync(path.join(src, 'a', 'big'), path.join(src, 'a', 'big-again'));
    fs.linkSync(path.join(src, 'a', 'big'), path.join(src, 'b', 'big-elsewhere'));
    fs.writeFileSync(path.join(src, 'b', 'small'), prng(2, 50_000));
    fs.linkSync(path.join(src, 'b', 'small'), path.join(src, 'b', 'small-link'));
    fs.writeFileSync(path.join(src, 'plain'), 'seven\n\n');
  });

  it('counts each inode once, in the first backup and in re-backups', async () => {
    const first = await keepJson(['backup', src, '--source', 'links'], { env });
    expect(first.files_new).toBe(6);
    expect(first.bytes).toBe(UNIQUE);
    // unchanged files reused from the parent, or directories taken unread from the cache
    const second = await keepJson(['backup', src, '--source', 'links'], { env });
    expect(second.files_unmodified).toBe(6);
    expect(second.bytes).toBe(UNIQUE);
    const third = await keepJson(['backup', src, '--source', 'links'], { env: { ...env, KEEP_NO_UNCHANGED_CACHE: '1' } });
    expect(third.bytes).toBe(UNIQUE);
    const list = await keepJson(['snapshots', '--source', 'links'], { env });
    expect(list.map((s: any) => s.size)).toEqual([UNIQUE, UNIQUE, UNIQUE]);
  });
});
