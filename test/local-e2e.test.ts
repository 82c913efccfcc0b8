/**
 * End to end on an embedded repository: a tree holding every kind of entry
 * is backed up and restored by the real `keep` binary, then backed up again
 * unchanged and with one byte changed.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  compareTrees,
  flipByte,
  generateTree,
  initRepo,
  keep,
  keepJson,
  MiB,
  packFiles,
  parseOneJson,
  prng,
  restoredPath,
  sha256,
  summarize,
  tempDirs,
  TreeInfo,
} from './helpers.js';

const isRoot = process.getuid?.() === 0;
const BACKUP_FIELDS = ['snapshot', 'source', 'time', 'files_new', 'files_changed', 'files_unmodified', 'bytes_read', 'bytes_sent', 'chunks_new', 'duration_s'];

function expectBackupShape(b: any): void {
  for (const f of BACKUP_FIELDS) expect(b, `backup --json lacks ${f}`).toHaveProperty(f);
  expect(b.snapshot).toMatch(/^[0-9a-f]{32}$/);
  expect(typeof b.source).toBe('string');
  expect(new Date(b.time).toISOString()).toBe(b.time);
  for (const f of ['files_new', 'files_changed', 'files_unmodified', 'bytes_read', 'bytes_sent', 'chunks_new']) {
    expect(Number.isInteger(b[f]) && b[f] >= 0, `${f} = ${b[f]}`).toBe(true);
  }
  expect(typeof b.duration_s).toBe('number');
  expect(b.duration_s).toBeGreaterThanOrEqual(0);
}

describe('a full tree through backup and restore', () => {
  const tmp = tempDirs();
  let env: Record<string, string>;
  let repo: string;
  let src: string;
  let tree: TreeInfo;
  let first: any;
  let second: any;
  let third: any;
  let changedAt: number;
  let originalByte: number;

  beforeAll(async () => {
    const base = tmp.make();
    ({ repo, env } = await initRepo(base));
    src = path.join(base, 'src');
    tree = generateTree(src, { largeFiles: [12 * MiB, 12 * MiB], compressibleSize: 8 * MiB, smallFiles: 2000 });
    expect(tree.files).toBeGreaterThan(2000);
    expect(tree.bytes).toBeGreaterThan(32 * MiB);
  });

  it('first backup reads everything once and compresses what compresses', async () => {
    const started = Date.now();
    const r = await keep(['backup', src, '--json'], { env });
    expect(r.code, r.stderr).toBe(0);
    // Progress goes to stderr only on a TTY; nothing here warrants a warning.
    expect(r.stderr).toBe('');
    first = parseOneJson(r);
    expectBackupShape(first);
    expect(first.source).toBe(os.hostname());
    expect(Date.parse(first.time)).toBeGreaterThanOrEqual(started - 1000);
    expect(Date.parse(first.time)).toBeLessThanOrEqual(Date.now());
    expect(first.files_new).toBe(tree.files);
    expect(first.files_changed).toBe(0);
    expect(first.files_unmodified).toBe(0);
    // Every byte read once; hardlinked content only once.
    expect(first.bytes_read).toBe(tree.uniqueBytes);
    expect(first.chunks_new).toBeGreaterThan(2000 + 8); // one per small file, ~1 MiB chunks of the large ones
    // 24 MiB of random data cannot shrink; 8 MiB of log text must.
    expect(first.bytes_sent).toBeGreaterThan(24 * MiB);
    expect(first.bytes_sent).toBeLessThan(24 * MiB + 2 * MiB + 2 * MiB);
  });

  it('restore is byte-identical, with modes, mtimes, symlinks, hardlinks, empty entries and non-UTF-8 names', async () => {
    const target = tmp.make('keep-restore-');
    const r = await keep(['restore', first.snapshot, '--target', target, '--json'], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    const out = parseOneJson(r);
    expect(out.snapshot).toBe(first.snapshot);
    const restored = restoredPath(target, src);
    expect(compareTrees(src, restored, { owner: isRoot, rootMeta: true })).toEqual([]);
    // The comparer is only as good as what it saw: the restored tree really holds the hard cases.
    const s = summarize(restored);
    expect(s.files).toBe(tree.files);
    expect(s.symlinks).toBe(5);
    expect(fs.readlinkSync(path.join(restored, 'links', 'dangling'))).toBe('does/not/exist');
    expect(fs.statSync(path.join(restored, 'hard', 'one')).ino).toBe(fs.statSync(path.join(restored, 'hard', 'sub', 'three')).ino);
    expect(fs.statSync(path.join(restored, 'hard', 'one')).nlink).toBe(3);
    expect(fs.readdirSync(path.join(restored, 'empty-dir'))).toEqual([]);
    expect(fs.readFileSync(Buffer.concat([Buffer.from(restored + '/'), Buffer.from([0x62, 0x61, 0x64, 0xff, 0xfe])])).toString()).toContain('not UTF-8');
  });

  it('a second backup of the unchanged tree reads no content and stores almost nothing', async () => {
    const r = await keep(['backup', src, '--json'], { env });
    expect(r.code, r.stderr).toBe(0);
    second = parseOneJson(r);
    expectBackupShape(second);
    expect(second.snapshot).not.toBe(first.snapshot);
    expect(second.files_unmodified).toBe(tree.files);
    expect(second.files_new).toBe(0);
    expect(second.files_changed).toBe(0);
    expect(second.bytes_read).toBe(0);
    // At most the tree nodes on the way to src (their directories' mtimes may have moved).
    expect(second.bytes_sent).toBeLessThan(tree.bytes / 100);
    expect(second.chunks_new).toBeLessThanOrEqual(4);
  });

  it('one byte changed in the middle of a large file: one file changed, a few new chunks', async () => {
    const file = path.join(src, tree.large[0]);
    const size = fs.statSync(file).size;
    changedAt = Math.floor(size / 2) + 12345;
    const fd = fs.openSync(file, 'r+');
    const b = Buffer.alloc(1);
    fs.readSync(fd, b, 0, 1, changedAt);
    originalByte = b[0];
    fs.closeSync(fd);
    flipByte(file, changedAt);
    expect(fs.statSync(file).size).toBe(size);

    const r = await keep(['backup', src, '--json'], { env });
    expect(r.code, r.stderr).toBe(0);
    third = parseOneJson(r);
    expectBackupShape(third);
    expect(third.files_changed).toBe(1);
    expect(third.files_new).toBe(0);
    expect(third.files_unmodified).toBe(tree.files - 1);
    // Only the changed file is read again...
    expect(third.bytes_read).toBe(size);
    // ...and content-defined chunking keeps every other chunk of it.
    expect(third.chunks_new).toBeGreaterThanOrEqual(1);
    expect(third.chunks_new).toBeLessThanOrEqual(4);
    expect(third.bytes_sent).toBeLessThan(size / 2);
  });

  it('the newest snapshot restores the changed tree; the first still restores the old byte (--include)', async () => {
    // Restored over an earlier restore of the first snapshot: every entry is replaced, hardlinks included.
    const t1 = tmp.make('keep-restore-');
    const r0 = await keep(['restore', first.snapshot, '--target', t1], { env });
    expect(r0.code, r0.stderr).toBe(0);
    expect(compareTrees(src, restoredPath(t1, src))).toContain(`${JSON.stringify(tree.large[0])}: content differs`);
    const r = await keep(['restore', 'latest', '--target', t1, '--json'], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(parseOneJson(r).snapshot).toBe(third.snapshot);
    expect(compareTrees(src, restoredPath(t1, src), { owner: isRoot, rootMeta: true })).toEqual([]);

    const t2 = tmp.make('keep-restore-');
    const only = path.join(src, tree.large[0]);
    const r2 = await keep(['restore', first.snapshot, '--target', t2, '--include', only, '--json'], { env });
    expect(r2.code, r2.stderr).toBe(0);
    const restored = fs.readFileSync(restoredPath(t2, only));
    const original = prng(1000, 12 * MiB);
    expect(restored[changedAt]).toBe(originalByte);
    expect(sha256(restored)).toBe(sha256(original));
    // Nothing but that file (and the directories leading to it) came back.
    expect(summarize(t2).files).toBe(1);
    expect(fs.readdirSync(path.dirname(restoredPath(t2, only)))).toEqual([path.basename(only)]);
  });

  it('stats counts every snapshot and the space deduplication saves', async () => {
    const stats = await keepJson(['stats'], { env });
    const snaps = await keepJson(['snapshots'], { env });
    expect(snaps.map((s: any) => s.id)).toEqual([first.snapshot, second.snapshot, third.snapshot]);
    expect(stats.snapshots).toBe(3);
    expect(stats.total_file_size).toBe(snaps.reduce((n: number, s: any) => n + s.size, 0));
    // (a hardlinked file counts once, as in restic: the snapshot size is what a restore writes)
    expect(stats.total_file_size).toBe(3 * tree.uniqueBytes);
    const onDisk = packFiles(repo).reduce((n, f) => n + fs.statSync(f).size, 0);
    expect(stats.stored_bytes).toBe(onDisk);
    expect(stats.packs).toBe(packFiles(repo).length);
    expect(stats.blobs).toBeGreaterThan(first.chunks_new);
    // Three snapshots of ~33 MiB stored in about one copy (less the compressed log).
    expect(stats.space_saving_ratio).toBeGreaterThan(2.5);
    expect(stats.stored_bytes).toBeLessThan(tree.bytes);
  });
});
