/**
 * The walk does not trust the file system between lstat and open (issue 13,
 * item 6): entries swapped while a backup runs (a symlink to a secret for a
 * file, a FIFO for a file) are never read as what they replaced, and an entry
 * that cannot be read (an r-- directory's children for a non-root user) is a
 * warning, not the end of the backup: the snapshot is written, exit code 3.
 * Directories are read through their descriptors; a path beyond PATH_MAX,
 * which a restore could not create, is a warning too.
 */
import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { initRepo, keep, keepJson, parseOneJson, RunResult, tempDirs } from './helpers.js';

const tmp = tempDirs();
const swappers: ChildProcess[] = [];
afterAll(() => {
  for (const c of swappers) if (c.exitCode === null) c.kill('SIGKILL');
});

/** A child process renaming `a` and `b` into each other's place in each dir, as fast as it can, until killed. */
function swapLoop(dirs: string[]): ChildProcess {
  const script = `
    const fs = require('fs');
    const dirs = JSON.parse(process.argv[1]);
    for (;;) for (const d of dirs) {
      try { fs.renameSync(d + '/a', d + '/t'); fs.renameSync(d + '/b', d + '/a'); fs.renameSync(d + '/t', d + '/b'); } catch {}
    }`;
  const c = spawn(process.execPath, ['-e', script, JSON.stringify(dirs)], { stdio: 'ignore' });
  swappers.push(c);
  return c;
}

/** Every regular file below `dir` (symlinks are not followed: a restored link to the secret is not its content). */
function regularFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...regularFiles(p));
    else if (e.isFile()) out.push(p);
  }
  return out;
}

/** A backup that finished: exit 0, or 3 with every skipped entry named in a warning (stderr and --json). */
function finished(r: RunResult): any {
  expect([0, 3], `exit ${r.code}: ${r.stderr}`).toContain(r.code);
  const out = parseOneJson(r);
  if (r.code === 3) {
    expect(out.skipped).toBeGreaterThan(0);
    expect(out.warnings.length).toBeGreaterThan(0);
    // under --json each is restic's "error" message on stderr, the warning its error.message
    const messages = r.stderr.split('\n').filter(Boolean).map((l) => (l.startsWith('{') ? JSON.parse(l).error.message : l));
    for (const w of out.warnings) expect(messages.join('\n')).toContain(w);
  } else expect(out.skipped).toBe(0);
  return out;
}

describe('entries swapped during the walk', () => {
  it('a symlink to a secret swapped with a file: the secret is never stored', async () => {
    const base = tmp.make('keep-walk-');
    const { env } = await initRepo(base);
    const secret = path.join(base, 'secret');
    const SECRET = 'SECRET-ROOT-ONLY-7f3a9c';
    fs.writeFileSync(secret, `${SECRET}\n`.repeat(100), { mode: 0o600 });
    const src = path.join(base, 'src');
    const dirs: string[] = [];
    for (let i = 0; i < 40; i++) {
      const d = path.join(src, `pair${i}`);
      fs.mkdirSync(d, { recursive: true });
      fs.writeFileSync(path.join(d, 'a'), `public ${i}\n`.repeat(100));
      fs.symlinkSync(secret, path.join(d, 'b'));
      dirs.push(d);
    }
    const swapper = swapLoop(dirs);
    const snaps: string[] = [];
    try {
      for (let i = 0; i < 6; i++) {
        const r = await keep(['backup', src, '--json'], { env: { ...env, KEEP_NO_UNCHANGED_CACHE: '1' }, timeoutMs: 120_000 });
        snaps.push(finished(r).snapshot);
      }
    } finally {
      swapper.kill('SIGKILL');
    }
    for (const id of snaps) {
      const t = tmp.make('keep-walk-out-');
      const rr = await keep(['restore', id, '--target', t], { env });
      expect(rr.code, rr.stderr).toBe(0);
      const files = regularFiles(t);
      expect(files.length).toBeGreaterThan(0);
      for (const f of files) expect(fs.readFileSync(f, 'utf8'), f).not.toContain(SECRET);
    }
  });

  it('a FIFO swapped with a file never hangs the backup', async () => {
    const base = tmp.make('keep-walk-');
    const { env } = await initRepo(base);
    const src = path.join(base, 'src');
    const dirs: string[] = [];
    for (let i = 0; i < 40; i++) {
      const d = path.join(src, `pair${i}`);
      fs.mkdirSync(d, { recursive: true });
      fs.writeFileSync(path.join(d, 'a'), `regular ${i}\n`);
      execFileSync('mkfifo', [path.join(d, 'b')]);
      dirs.push(d);
    }
    const swapper = swapLoop(dirs);
    try {
      for (let i = 0; i < 6; i++) {
        // A backup that opened a FIFO would wait for a writer forever: the timeout turns that into exit null.
        const r = await keep(['backup', src, '--json'], { env: { ...env, KEEP_NO_UNCHANGED_CACHE: '1' }, timeoutMs: 60_000 });
        const out = finished(r);
        for (const w of out.warnings) expect(w).toMatch(/special file|replaced|vanished|cannot read/);
      }
    } finally {
      swapper.kill('SIGKILL');
    }
  });
});

describe('entries that cannot be read', () => {
  it('an r-- directory (non-root): its entries are warnings, the rest is saved, exit 3', async () => {
    const base = tmp.make('keep-walk-');
    fs.chmodSync(base, 0o755);
    const { env } = await initRepo(base);
    const NOBODY = 65534;
    execFileSync('chown', ['-R', `${NOBODY}:${NOBODY}`, base]);
    const src = path.join(base, 'src');
    fs.mkdirSync(path.join(src, 'closed'), { recursive: true });
    fs.writeFileSync(path.join(src, 'ok.txt'), 'readable\n');
    fs.writeFileSync(path.join(src, 'closed', 'inside.txt'), 'behind r--\n');
    execFileSync('chown', ['-R', `${NOBODY}:${NOBODY}`, src]);
    fs.chmodSync(path.join(src, 'closed'), 0o444); // r--: names can be listed, entries not reached
    const asNobody = { env: { ...env, HOME: base }, wrap: ['setpriv', `--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', '--'] };
    const who = execFileSync('setpriv', [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', '--', 'id', '-u']).toString().trim();
    expect(who).toBe(String(NOBODY));

    const r = await keep(['backup', src, '--json'], asNobody);
    expect(r.code, r.stderr).toBe(3);
    const out = parseOneJson(r);
    expect(out.skipped).toBe(1);
    expect(out.warnings.join('\n')).toMatch(/closed\/inside\.txt: cannot read \(EACCES\)/);
    expect(r.stderr).toContain(`${src}/closed/inside.txt: cannot read (EACCES)`);
    const rows = await keepJson(['ls', out.snapshot], asNobody);
    const paths = rows.map((x: any) => x.path);
    expect(paths).toContain(`${src}/ok.txt`);
    expect(paths).toContain(`${src}/closed`);
    expect(paths).not.toContain(`${src}/closed/inside.txt`);
    // without --json too: the warning, the summary line and the exit code
    const human = await keep(['backup', src], asNobody);
    expect(human.code).toBe(3);
    expect(human.stderr).toContain(`keep: warning: ${src}/closed/inside.txt: cannot read (EACCES); skipped`);
    expect(human.stderr).toMatch(/snapshot saved without them, exit code 3/);
    fs.chmodSync(path.join(src, 'closed'), 0o755);
  });

  it('a path longer than PATH_MAX is a warning: the rest is saved, exit 3', async () => {
    const base = tmp.make('keep-walk-');
    const { env } = await initRepo(base);
    const src = path.join(base, 'src');
    fs.mkdirSync(src);
    fs.writeFileSync(path.join(src, 'ok.txt'), 'short path\n');
    const name = 'd'.repeat(250);
    const deep = `${src}/${Array(20).fill(name).join('/')}/leaf.txt`;
    expect(deep.length).toBeGreaterThan(4096);
    try {
      // mkdir and chdir by relative names (perl's chdir is the system call's): no path given to the kernel is long
      const mk = `chdir $ARGV[0] or die; for (1..20) { mkdir $ARGV[1] or die; chdir $ARGV[1] or die } open(F, '>', 'leaf.txt') or die; print F "deep\\n"; close F`;
      execFileSync('perl', ['-e', mk, src, name]);
      const r = await keep(['backup', src, '--json'], { env });
      expect(r.code, r.stderr).toBe(3);
      const out = parseOneJson(r);
      expect(out.skipped).toBe(1);
      expect(out.warnings[0]).toMatch(/over PATH_MAX \(4096\): a restore could not create it\); skipped$/);
      const rows = await keepJson(['ls', out.snapshot], { env });
      const paths: string[] = rows.map((x: any) => x.path);
      expect(paths).toContain(`${src}/ok.txt`);
      // every directory whose path fits is there; the entry that does not is not
      const kept = paths.filter((p) => p.startsWith(`${src}/${name}`));
      expect(kept.length).toBeGreaterThan(10);
      for (const p of kept) expect(p.length).toBeLessThan(4096);
      expect(paths).not.toContain(deep);
    } finally {
      execFileSync('rm', ['-rf', src]); // (GNU rm walks by descriptor too)
    }
  });
});
