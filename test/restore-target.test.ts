/**
 * Restoring into a target that is not empty, through the real `keep` binary
 * on an embedded repository: symlinks planted where the snapshot has a file,
 * a directory or a symlink are replaced, never followed (nothing is written
 * outside the target); a restore over an earlier restore of the same tree, or
 * over other content, gives the snapshot exactly; --include keeps hardlinks;
 * a damaged chunk in the middle of a large file fails the restore clearly.
 */
import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { compareTrees, errorLine, fingerprint, flipByte, generateTree, initRepo, keep, keepJson, MiB, packBlobs, packFiles, restoredPath, tempDirs, TreeInfo } from './helpers.js';

describe('restore into a target that already holds things', () => {
  const tmp = tempDirs();
  let env: Record<string, string>;
  let tree: TreeInfo;
  /** outside the target: what planted symlinks point at */
  let outside: string;

  beforeAll(async () => {
    const base = tmp.make('keep-rt-');
    ({ env } = await initRepo(base));
    tree = generateTree(path.join(base, 'src'), { largeFiles: [3 * MiB], compressibleSize: 2 * MiB, smallFiles: 120 });
    await keepJson(['backup', tree.root], { env });
    outside = path.join(base, 'outside');
    fs.mkdirSync(outside);
    fs.writeFileSync(path.join(outside, 'precious'), 'must survive\n');
  });

  /** A symlink at `rel` (inside the restored tree) pointing outside the target. */
  const plant = (target: string, rel: string, to: string) => {
    const p = path.join(restoredPath(target, tree.root), rel);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    fs.rmSync(p, { recursive: true, force: true });
    fs.symlinkSync(to, p);
  };

  it('replaces planted symlinks (at files, a large file, hardlinks, directories and symlinks) without following them', async () => {
    const target = tmp.make('keep-rt-planted-');
    const before = fingerprint(outside);
    // Files of one chunk, a large file, an empty file, every path of a hardlink group.
    plant(target, 'with space.txt', path.join(outside, 'precious'));
    plant(target, tree.large[0], path.join(outside, 'precious'));
    plant(target, 'empty.txt', path.join(outside, 'precious'));
    plant(target, 'hard/one', path.join(outside, 'precious'));
    plant(target, 'hard/sub/three', path.join(outside, 'precious'));
    // Directories: writes into them would land outside.
    plant(target, 'modes', outside);
    plant(target, 'many/d0', outside);
    // A symlink entry, and a dangling symlink where a file goes.
    plant(target, 'links/relative', outside);
    plant(target, 'times/epoch', path.join(outside, 'not-there-yet'));

    const r = await keep(['restore', 'latest', '--target', target, '--json'], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(compareTrees(tree.root, restoredPath(target, tree.root), { rootMeta: true })).toEqual([]);
    expect(fingerprint(outside)).toEqual(before);
    expect(fs.existsSync(path.join(outside, 'not-there-yet'))).toBe(false);
  });

  it('a symlink planted at an ancestor of the restored tree is replaced by a directory', async () => {
    const target = tmp.make('keep-rt-ancestor-');
    const first = tree.root.split(path.sep).filter(Boolean)[0];
    fs.symlinkSync(outside, path.join(target, first));
    const before = fingerprint(outside);
    const r = await keep(['restore', 'latest', '--target', target, '--json'], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(fs.lstatSync(path.join(target, first)).isDirectory()).toBe(true);
    expect(fingerprint(outside)).toEqual(before);
    expect(compareTrees(tree.root, restoredPath(target, tree.root))).toEqual([]);
  });

  it('restores over an earlier restore, and over other content, to exactly the snapshot', async () => {
    const target = tmp.make('keep-rt-again-');
    expect((await keep(['restore', 'latest', '--target', target], { env })).code).toBe(0);
    const root = restoredPath(target, tree.root);
    // Change the restored tree: other content, other modes, a file where a directory was and back.
    fs.writeFileSync(path.join(root, 'with space.txt'), 'edited\n');
    fs.writeFileSync(path.join(root, tree.large[0]), 'short now');
    fs.chmodSync(path.join(root, 'modes', 'exec.sh'), 0o600);
    fs.rmSync(path.join(root, 'empty-dir'), { recursive: true });
    fs.writeFileSync(path.join(root, 'empty-dir'), 'a file where a directory was\n');
    fs.unlinkSync(path.join(root, 'hard', 'two'));
    fs.writeFileSync(path.join(root, 'hard', 'two'), 'no longer a link\n');
    fs.unlinkSync(path.join(root, 'links', 'absolute'));
    fs.writeFileSync(path.join(root, 'links', 'absolute'), 'a file where a symlink was\n');

    const r = await keep(['restore', 'latest', '--target', target, '--json'], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(compareTrees(tree.root, root, { rootMeta: true })).toEqual([]);
  });

  it.runIf(process.getuid?.() === 0)('as root, into a set-group-ID target of another group, every entry gets its own owner, not the directory\'s group', async () => {
    // (files made in this restore's directories are created ours and skip fchown; not where a directory hands down its group)
    const target = tmp.make('keep-rt-setgid-');
    fs.chownSync(target, 0, 4321);
    fs.chmodSync(target, 0o2755);
    const r = await keep(['restore', 'latest', '--target', target], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(compareTrees(tree.root, restoredPath(target, tree.root), { owner: true })).toEqual([]);
  });

  it('--include of one directory restores its hardlinks as links of each other', async () => {
    const target = tmp.make('keep-rt-inc-');
    const r = await keepJson(['restore', 'latest', '--target', target, '--include', path.join(tree.root, 'hard', 'sub')], { env });
    // hard/sub holds "three" (of a group of three) and "pair-b" (of a pair): each restored once, as files.
    expect(r.files).toBe(2);
    expect(r.hardlinks).toBe(0);
    expect(compareTrees(path.join(tree.root, 'hard', 'sub'), path.join(restoredPath(target, tree.root), 'hard', 'sub'))).toEqual([]);
    expect(fs.readdirSync(path.join(restoredPath(target, tree.root), 'hard'))).toEqual(['sub']);

    const whole = tmp.make('keep-rt-inc-');
    const w = await keepJson(['restore', 'latest', '--target', whole, '--include', path.join(tree.root, 'hard')], { env });
    // one, pair-a and empty-a are written; two, sub/three, sub/pair-b and empty-b are links to them.
    expect(w.files).toBe(3);
    expect(w.hardlinks).toBe(4);
    expect(compareTrees(path.join(tree.root, 'hard'), path.join(restoredPath(whole, tree.root), 'hard'))).toEqual([]);
  });
});

describe('restore of a large file with a damaged chunk', () => {
  const tmp = tempDirs();

  it('fails with a clear error naming the blob, and writes nothing outside the target', async () => {
    const base = tmp.make('keep-rt-damage-');
    const { repo, env } = await initRepo(base);
    const src = path.join(base, 'src');
    fs.mkdirSync(src);
    // Several chunks of random data (chunks average 1 MiB), and small files after it.
    const big = Buffer.alloc(12 * MiB);
    for (let i = 0; i < big.length; i += 4) big.writeUInt32LE((Math.imul(i, 2654435761) ^ (i >>> 7)) >>> 0, i);
    fs.writeFileSync(path.join(src, 'big.bin'), big);
    for (let i = 0; i < 50; i++) fs.writeFileSync(path.join(src, `small-${i}.txt`), `small ${i}\n`);
    await keepJson(['backup', src], { env });

    // Damage a data blob in the middle of the big file (the largest data blobs are its chunks).
    const blobs = packFiles(repo)
      .flatMap((f) => packBlobs(f))
      .filter((b) => b.type === 0)
      .sort((a, b) => b.length - a.length);
    expect(blobs.length).toBeGreaterThan(3);
    const victim = blobs[1];
    flipByte(victim.pack, victim.offset + Math.floor(victim.length / 2));

    const target = tmp.make('keep-rt-damage-out-');
    const r = await keep(['restore', 'latest', '--target', target], { env });
    const line = errorLine(r);
    expect(r.code).toBe(4);
    expect(line).toContain(victim.id);
    expect(line).toMatch(/damaged|authentication/);
  });
});
