/**
 * restic's pattern semantics (internal/filter and the "Excluding files"
 * manual) for keep's --exclude / --include, against a table of cases; and the
 * helpers around them: exclude files, sizes, --files-from globbing.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { childMayMatch, compilePattern, matches, PatternList } from '@keep/agent/dist/selection/pattern.js';
import { expandEnv, textLines } from '@keep/agent/dist/selection/pattern-file.js';
import { glob } from '@keep/agent/dist/selection/files-from.js';
import { parseSize } from '@keep/agent/dist/selection/size.js';
import { tempDirs } from './helpers.js';

// [pattern, path, matches]
const CASES: [string, string, boolean][] = [
  // a pattern matches whole components, at any depth unless anchored by a leading /
  ['foo', '/dir1/foo/dir2/file', true],
  ['foo', '/dir/foo', true],
  ['foo', '/dir/foobar', false],
  ['foo', '/barfoo', false],
  ['/bin', '/bin/bash', true],
  ['/bin', '/usr/bin/restic', false],
  ['/bin/', '/bin', true],
  ['bin/', '/usr/bin', true],
  ['/usr//bin/./', '/usr/bin/env', true],
  ['/a/../b', '/b/c', true],
  ['*.go', '/foo/bar/test.go', true],
  ['*.go', '/foo/bar/test.go/x', true],
  ['*.go', '/foo/bar/test.c', false],
  ['*.c', '/foo/.c', true],
  ['bar/*.go', '/foo/bar/test.go', true],
  ['foo/*.go', '/foo/bar/test.go', false],
  ['/foo/*/test.go', '/foo/bar/test.go', true],
  ['/foo/*', '/foo', false],
  ['/foo/*', '/foo/x/y', true],
  // one * or ? never crosses a /
  ['b*ash', '/bin/bash', true],
  ['b*ash', '/bin/ash', false],
  ['/bi?', '/bin', true],
  ['/bi?', '/bi', false],
  ['/b?n/x', '/b/n/x', false],
  // ** spans any number of directories, none included
  ['foo/**/bar', '/dir1/foo/dir2/bar/file', true],
  ['foo/**/bar', '/foo/bar/file', true],
  ['foo/**/bar', '/tmp/foo/bar', true],
  ['foo/**/bar', '/tmp/foo/a/b/c/bar', true],
  ['foo/**/bar', '/tmp/foo/a/b/c/baz', false],
  ['/foo/**/*.txt', '/foo/a/b/c.txt', true],
  ['/foo/**/*.txt', '/bar/foo/c.txt', false],
  ['**/*.txt', '/x/y.txt', true],
  ['/**', '/anything/at/all', true],
  // character classes, ranges, negated classes, escapes
  ['[abc].txt', '/d/b.txt', true],
  ['[abc].txt', '/d/d.txt', false],
  ['[a-c]x', '/bx', true],
  ['[^a-c]x', '/bx', false],
  ['[^a-c]x', '/dx', true],
  ['[\\]]', '/]', true],
  ['\\*', '/*', true],
  ['\\*', '/x', false],
  ['a\\?', '/a?', true],
  ['a\\?', '/ab', false],
  ['\\[x]', '/[x]', true],
  ['name with spaces', '/home/u/name with spaces/f', true],
  ['$RECYCLE.BIN', '/mnt/$RECYCLE.BIN', true],
  ['é*', '/x/été', true],
  ['?', '/é', true],
];

describe('restic pattern semantics', () => {
  it.each(CASES)('%s against %s: %s', (pattern, p, expected) => {
    expect(matches(compilePattern(pattern), p)).toBe(expected);
  });

  it('case-insensitive patterns (--iexclude) fold both sides', () => {
    expect(matches(compilePattern('*.JPG', true), '/Photos/a.jpg')).toBe(true);
    expect(matches(compilePattern('/photos', true), '/PHOTOS/x')).toBe(true);
    expect(matches(compilePattern('*.JPG'), '/Photos/a.jpg')).toBe(false);
  });

  it('malformed patterns are refused before anything runs', () => {
    for (const bad of ['[', '[a', 'x\\', '[]a]', '[-a]', '']) expect(() => compilePattern(bad), bad).toThrow(/pattern/);
  });

  it('childMayMatch: an anchored pattern only below its own prefix, an unanchored one anywhere', () => {
    expect(childMayMatch(compilePattern('/home/me/docs'), '/home')).toBe(true);
    expect(childMayMatch(compilePattern('/home/me/docs'), '/home/other')).toBe(false);
    expect(childMayMatch(compilePattern('/home/**/x'), '/home/a/b')).toBe(true);
    expect(childMayMatch(compilePattern('/home/**/x'), '/etc')).toBe(false);
    expect(childMayMatch(compilePattern('docs'), '/anything')).toBe(true);
  });

  it('a negated pattern cancels an earlier match; the last matching pattern decides', () => {
    const home = '/home/bob';
    const l = new PatternList([`${home}/*`, `!${home}/Documents`, '*~'].map((p) => compilePattern(p)));
    expect(l.test(`${home}/Music`).matched).toBe(true);
    expect(l.test(`${home}/Music/a.mp3`).matched).toBe(true);
    expect(l.test(`${home}/Documents`).matched).toBe(false);
    expect(l.test(`${home}/Documents/cv.pdf`).matched).toBe(false);
    expect(l.test(`${home}/Documents/cv.pdf~`).matched).toBe(true);
    expect(l.test('/etc/passwd').matched).toBe(false);
    // a negation before the pattern it would cancel does nothing
    const l2 = new PatternList(['!*.keep', '*.log'].map((p) => compilePattern(p)));
    expect(l2.test('/a/x.log').matched).toBe(true);
    expect(l2.unmatched()).toEqual(['!*.keep']);
  });
});

describe('exclude files, sizes, --files-from', () => {
  const tmp = tempDirs();

  it('exclude-file lines: trimmed, comments and empty lines skipped, $VAR / ${VAR} expanded, $$ is a dollar', () => {
    const lines = textLines(Buffer.from('\uFEFF# comment\n  *.tmp  \n\n\t/var/cache\r\n  # indented comment\n$HOME/x\n'));
    expect(lines).toEqual(['*.tmp', '/var/cache', '$HOME/x']);
    const env = { HOME: '/home/bob', USER: 'bob' };
    expect(expandEnv('$HOME/x', env)).toBe('/home/bob/x');
    expect(expandEnv('/home/${USER}/y', env)).toBe('/home/bob/y');
    expect(expandEnv('/price$$5/$UNSET/z', env)).toBe('/price$5//z');
  });

  it('sizes take restic suffixes k/K, m/M, g/G, t/T (powers of 1024)', () => {
    expect(parseSize('2048', 'x')).toBe(2048);
    expect(parseSize('1k', 'x')).toBe(1024);
    expect(parseSize('10K', 'x')).toBe(10240);
    expect(parseSize('20m', 'x')).toBe(20 * 1024 ** 2);
    expect(parseSize('30G', 'x')).toBe(30 * 1024 ** 3);
    expect(parseSize('2T', 'x')).toBe(2 * 1024 ** 4);
    for (const bad of ['', '1.5M', '-1', '1X', 'M']) expect(() => parseSize(bad, '--exclude-larger-than'), bad).toThrow(/--exclude-larger-than/);
  });

  it('--files-from globs each line as Go filepath.Glob: one component per wildcard, sorted', () => {
    const d = tmp.make('keep-glob-');
    for (const f of ['a/x.txt', 'a/y.log', 'b/z.txt', 'b/c/w.txt']) {
      fs.mkdirSync(path.dirname(path.join(d, f)), { recursive: true });
      fs.writeFileSync(path.join(d, f), f);
    }
    expect(glob(`${d}/*/*.txt`)).toEqual([`${d}/a/x.txt`, `${d}/b/z.txt`]);
    expect(glob(`${d}/[ab]`)).toEqual([`${d}/a`, `${d}/b`]);
    expect(glob(`${d}/b/c/w.txt`)).toEqual([`${d}/b/c/w.txt`]);
    expect(glob(`${d}/nope/*`)).toEqual([]);
    expect(glob(`${d}/missing`)).toEqual([]);
  });
});
