/**
 * The restore's file-system steps (agent/src/restore/target-fs.ts) on real
 * files: each replaces what is already at its path without following it, and
 * the thread-pool create (used when creates are slow) behaves like the
 * synchronous one. The end-to-end tests cover the same through `keep restore`.
 */
import fs from 'node:fs';
import path from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { createFile, createFileAsync, createLink, createSymlink, ensureDir, exactCreateMode, readUmask, setDirMeta, setMetaFd, writeSparse } from '@keep/agent/dist/restore/target-fs.js';
import { fingerprint, tempDirs } from './helpers.js';

describe('restore target steps never follow what they replace', () => {
  const tmp = tempDirs();
  let dir: string;
  let outside: string;
  const B = (p: string) => Buffer.from(p);
  const meta = { mode: 0o640, uid: 0, gid: 0, mtime: 1_500_000_000.5 };

  beforeEach(() => {
    dir = tmp.make('keep-tfs-');
    outside = tmp.make('keep-tfs-outside-');
    fs.writeFileSync(path.join(outside, 'precious'), 'must survive\n');
    fs.chmodSync(outside, 0o755);
  });

  for (const [name, create] of [
    ['createFile', async (p: Buffer) => createFile(p)],
    ['createFileAsync', (p: Buffer) => createFileAsync(p)],
  ] as const) {
    it(`${name}: a new file, or replaces a symlink (dangling or not) or a file at the path`, async () => {
      const before = fingerprint(outside);
      const cases: [string, () => void][] = [
        ['new', () => undefined],
        ['link', () => fs.symlinkSync(path.join(outside, 'precious'), path.join(dir, 'link'))],
        ['dangling', () => fs.symlinkSync(path.join(outside, 'absent'), path.join(dir, 'dangling'))],
        ['file', () => fs.writeFileSync(path.join(dir, 'file'), 'old content\n')],
      ];
      for (const [n, setup] of cases) {
        setup();
        const fd = await create(B(path.join(dir, n)));
        fs.writeSync(fd, 'new\n');
        fs.closeSync(fd);
        const st = fs.lstatSync(path.join(dir, n));
        expect(st.isFile(), n).toBe(true);
        expect(st.mode & 0o777, n).toBe(0o600);
        expect(fs.readFileSync(path.join(dir, n), 'utf8'), n).toBe('new\n');
      }
      expect(fingerprint(outside)).toEqual(before);
      expect(fs.existsSync(path.join(outside, 'absent'))).toBe(false);
      // A directory where a file goes is not removed: the restore fails on it.
      fs.mkdirSync(path.join(dir, 'dir'));
      fs.writeFileSync(path.join(dir, 'dir', 'inside'), 'kept');
      await expect(create(B(path.join(dir, 'dir')))).rejects.toThrow(/EISDIR|EPERM/);
      expect(fs.readFileSync(path.join(dir, 'dir', 'inside'), 'utf8')).toBe('kept');
    });
  }

  it('a file is created with its own mode only when open(2) gives exactly that; it is truncated only when it ends in a hole', () => {
    const umask = readUmask();
    expect(umask).toBe(process.umask());
    expect(exactCreateMode(0o644, 0o022)).toBe(0o644);
    expect(exactCreateMode(0o100755, 0o022)).toBe(0o755);
    for (const [mode, mask] of [[0o666, 0o022], [0o4755, 0o022], [0o1777, 0], [0o644, undefined]] as const) expect(exactCreateMode(mode, mask), mode.toString(8)).toBeUndefined();
    // Each mode as setMetaFd leaves it, whether created with it (no fchmod) or 0600 and changed.
    for (const mode of [0o644, 0o755, 0o666, 0o777, 0o4755, 0o400, 0o000]) {
      const p = path.join(dir, `m${mode.toString(8)}`);
      const exact = exactCreateMode(mode, umask);
      const fd = createFile(B(p), exact);
      setMetaFd(fd, { ...meta, mode }, false, exact);
      fs.closeSync(fd);
      expect(fs.statSync(p).mode & 0o7777, mode.toString(8)).toBe(mode);
    }
    const data = Buffer.alloc(3 * 4096);
    data.fill(1, 0, 4096);
    const ends = (d: Buffer, at: number) => {
      const fd = createFile(B(path.join(dir, `s${at}-${d.length}`)));
      try {
        return writeSparse(fd, d, at);
      } finally {
        fs.closeSync(fd);
      }
    };
    expect(ends(data, 0)).toBe(false); // the last two blocks are a hole: finishSparse sets the size
    expect(ends(data.subarray(0, 4096 + 10), 0)).toBe(true);
    expect(ends(data.subarray(4096), 0)).toBe(false);
    expect(ends(data.subarray(4000, 4100), 0)).toBe(true); // (not a whole block: written)
  });

  it('ensureDir makes a directory, reuses a real one, replaces a symlink or a file', () => {
    expect(ensureDir(B(path.join(dir, 'd')), 0o700)).toBe(true);
    expect(fs.statSync(path.join(dir, 'd')).mode & 0o777).toBe(0o700);
    fs.writeFileSync(path.join(dir, 'd', 'kept'), 'x');
    expect(ensureDir(B(path.join(dir, 'd')), 0o700)).toBe(false);
    expect(fs.existsSync(path.join(dir, 'd', 'kept'))).toBe(true);

    fs.symlinkSync(outside, path.join(dir, 'sl'));
    expect(ensureDir(B(path.join(dir, 'sl')), 0o700)).toBe(true);
    expect(fs.lstatSync(path.join(dir, 'sl')).isDirectory()).toBe(true);
    expect(fs.readdirSync(outside)).toEqual(['precious']);

    fs.writeFileSync(path.join(dir, 'f'), 'a file');
    expect(ensureDir(B(path.join(dir, 'f')), 0o700)).toBe(true);
    expect(fs.lstatSync(path.join(dir, 'f')).isDirectory()).toBe(true);
  });

  it('createSymlink and createLink replace what is there; setDirMeta refuses a symlink', () => {
    fs.symlinkSync(outside, path.join(dir, 's'));
    createSymlink(B('elsewhere'), B(path.join(dir, 's')), meta, false);
    expect(fs.readlinkSync(path.join(dir, 's'))).toBe('elsewhere');

    fs.writeFileSync(path.join(dir, 'a'), 'content');
    fs.symlinkSync(path.join(outside, 'precious'), path.join(dir, 'b'));
    createLink(B(path.join(dir, 'a')), B(path.join(dir, 'b')));
    expect(fs.statSync(path.join(dir, 'b')).ino).toBe(fs.statSync(path.join(dir, 'a')).ino);
    expect(fs.readFileSync(path.join(outside, 'precious'), 'utf8')).toBe('must survive\n');

    fs.mkdirSync(path.join(dir, 'real'));
    setDirMeta(B(path.join(dir, 'real')), meta, false);
    const st = fs.statSync(path.join(dir, 'real'));
    expect(st.mode & 0o777).toBe(0o640);
    expect(st.mtimeMs).toBe(1_500_000_000_500);

    fs.symlinkSync(outside, path.join(dir, 'swapped'));
    expect(() => setDirMeta(B(path.join(dir, 'swapped')), meta, false)).toThrow(/ELOOP|ENOTDIR/);
    expect(fs.statSync(outside).mode & 0o777).toBe(0o755);
  });
});
