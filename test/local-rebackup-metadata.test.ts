import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { compareTrees, generateTree, initRepo, keepJson, restoredPath, tempDirs } from './helpers.js';

/**
 * A re-backup reuses the parent's tree node for every directory whose entries
 * are all exactly the parent's (archiver.ts): no encoding, hashing or sealing.
 * These tests pin down the other side: any change a tree node records —
 * content, mode, times, a new or removed name, deep in the tree — still makes
 * new nodes all the way up, and restores show it.
 */
const dirs = tempDirs();

describe('re-backup of a mostly unchanged tree', () => {
  const dir = dirs.make('rebackup-meta-');
  const src = path.join(dir, 'src');
  generateTree(src, { smallFiles: 60, largeFiles: [300_000], compressibleSize: 0 });
  const deep = path.join(src, 'a', 'b', 'c');
  fs.mkdirSync(deep, { recursive: true });
  fs.writeFileSync(path.join(deep, 'leaf.txt'), 'deep leaf\n');
  let env: Record<string, string>;

  async function backupAndRestore(label: string): Promise<{ backup: any; restored: string }> {
    const backup = await keepJson(['backup', src], { env });
    const target = path.join(dir, `restore-${label}`);
    await keepJson(['restore', backup.snapshot, '--target', target], { env });
    return { backup, restored: restoredPath(target, src) };
  }

  it('unchanged: the nodes of src and below are the parent snapshot\'s, nothing read; the whole tree is too when its ancestors did not move', async () => {
    env = (await initRepo(dir)).env;
    // src's ancestors (/, the temp dir) are entries of the nodes on the way to it: other tests writing
    // in the temp dir move its mtime, and then those few nodes are new. src and below must not be.
    const ancestors = () => path.dirname(src).split('/').map((_, i, parts) => parts.slice(0, i + 1).join('/') || '/').map((d) => fs.lstatSync(d, { bigint: true }).mtimeNs);
    const before = ancestors();
    const first = await keepJson(['backup', src], { env });
    const again = await keepJson(['backup', src], { env });
    const moved = ancestors().some((t, i) => t !== before[i]);
    expect(again.bytes_read).toBe(0);
    expect(again.files_unmodified).toBe(first.files_new);
    // At most the nodes on the way to src (~200 bytes when the temp dir moved), never src's own.
    expect(again.bytes_sent).toBeLessThan(1000);
    const snaps = await keepJson(['snapshots'], { env });
    expect(snaps).toHaveLength(2);
    expect(snaps[0].tree).toMatch(/^[0-9a-f]{64}$/);
    if (!moved) {
      expect(again.bytes_sent).toBe(0);
      expect(snaps[1].tree).toBe(snaps[0].tree);
    }
  });

  it('a mode change deep in the tree is recorded (file and directory), and restored', async () => {
    fs.chmodSync(path.join(deep, 'leaf.txt'), 0o640);
    fs.chmodSync(path.join(src, 'a', 'b'), 0o750);
    const { backup, restored } = await backupAndRestore('mode');
    // the chmod moved the file's ctime: it is read again (restic's rule), nothing else is
    expect(backup.bytes_read).toBe('deep leaf\n'.length);
    expect(backup.bytes_sent).toBeGreaterThan(0);
    expect(fs.statSync(path.join(restored, 'a', 'b', 'c', 'leaf.txt')).mode & 0o777).toBe(0o640);
    expect(fs.statSync(path.join(restored, 'a', 'b')).mode & 0o777).toBe(0o750);
    expect(compareTrees(src, restored)).toEqual([]);
  });

  it('an mtime set back on a deep file, a new name and a removed name are recorded', async () => {
    fs.utimesSync(path.join(deep, 'leaf.txt'), new Date('2020-01-02T03:04:05Z'), new Date('2020-01-02T03:04:05Z'));
    fs.writeFileSync(path.join(deep, 'new.txt'), 'new\n');
    const victim = fs.readdirSync(src).find((n) => fs.statSync(path.join(src, n)).isFile())!;
    fs.rmSync(path.join(src, victim));
    const { backup, restored } = await backupAndRestore('names');
    expect(backup.files_new).toBe(1);
    expect(fs.statSync(path.join(restored, 'a', 'b', 'c', 'leaf.txt')).mtime.toISOString()).toBe('2020-01-02T03:04:05.000Z');
    expect(fs.existsSync(path.join(restored, victim))).toBe(false);
    expect(compareTrees(src, restored)).toEqual([]);
  });
});
