/**
 * `keep restore --include / --exclude` with restic's patterns, matched against
 * the paths in the snapshot: relative and glob includes restore what they name
 * (they restored nothing, with exit 0, before), and a pattern that matches
 * nothing ends the command with exit 1 and names it.
 */
import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { errorLine, initRepo, keep, keepJson, restoredPath, summaryLine, tempDirs } from './helpers.js';

/** everything below `dir`, relative, sorted (directories too) */
function walk(dir: string, rel = ''): string[] {
  if (!fs.existsSync(dir)) return [];
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const r = rel ? `${rel}/${e.name}` : e.name;
    out.push(r);
    if (e.isDirectory()) out.push(...walk(path.join(dir, e.name), r));
  }
  return out.sort();
}

describe('keep restore --include / --exclude', () => {
  const tmp = tempDirs();
  let base: string;
  let src: string;
  let env: Record<string, string>;
  let snapshot: string;

  const restore = async (args: string[]) => {
    const t = tmp.make('keep-sel-restore-');
    const r = await keep(['restore', snapshot, '--target', t, ...args], { env });
    return { r, t, got: walk(restoredPath(t, src)) };
  };
  const restored = async (args: string[]) => {
    const { r, got } = await restore(args);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    return got;
  };

  beforeAll(async () => {
    base = tmp.make('keep-sel-restore-');
    ({ env } = await initRepo(base));
    src = path.join(base, 'src');
    for (const [name, content] of Object.entries({ 'a.txt': 'a\n', 'b.log': 'b\n', 'sub/c.txt': 'c\n', 'sub/d.log': 'd\n', 'sub/deep/e.txt': 'e\n' })) {
      fs.mkdirSync(path.dirname(path.join(src, name)), { recursive: true });
      fs.writeFileSync(path.join(src, name), content);
    }
    fs.symlinkSync('a.txt', path.join(src, 'link'));
    fs.chmodSync(path.join(src, 'sub'), 0o750);
    snapshot = (await keepJson(['backup', src], { env })).snapshot;
  });

  it('a relative --include restores the directory it names, with its metadata, and all below', async () => {
    const { r, t, got } = await restore(['--include', 'sub', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(got).toEqual(['sub', 'sub/c.txt', 'sub/d.log', 'sub/deep', 'sub/deep/e.txt']);
    expect(summaryLine(r).files).toBe(3);
    expect(fs.statSync(restoredPath(t, path.join(src, 'sub'))).mode & 0o777).toBe(0o750);
    expect(fs.readFileSync(restoredPath(t, path.join(src, 'sub/deep/e.txt')), 'utf8')).toBe('e\n');
  });

  it('a glob --include restores what it matches at any depth, and the directories leading there', async () => {
    expect(await restored(['--include', '*.txt'])).toEqual(['a.txt', 'sub', 'sub/c.txt', 'sub/deep', 'sub/deep/e.txt']);
    // ** spans zero directories too
    expect(await restored(['--include', `${src}/sub/**/*.txt`])).toEqual(['sub', 'sub/c.txt', 'sub/deep', 'sub/deep/e.txt']);
    expect(await restored(['--include', `${src}/*/*/*.txt`])).toEqual(['sub', 'sub/deep', 'sub/deep/e.txt']);
    expect(await restored(['--iinclude', '*.LOG'])).toEqual(['b.log', 'sub', 'sub/d.log']);
  });

  it('--exclude leaves out what it matches and everything below; with --include, both apply', async () => {
    expect(await restored(['--exclude', '*.log'])).toEqual(['a.txt', 'link', 'sub', 'sub/c.txt', 'sub/deep', 'sub/deep/e.txt']);
    expect(await restored(['--exclude', 'sub'])).toEqual(['a.txt', 'b.log', 'link']);
    expect(await restored(['-i', 'sub', '-e', 'deep'])).toEqual(['sub', 'sub/c.txt', 'sub/d.log']);
  });

  it('a pattern that matches nothing is an error (exit 1) naming it', async () => {
    const { r, got } = await restore(['--include', 'no-such-name']);
    expect(r.code).toBe(1);
    expect(errorLine(r)).toMatch(/--include no-such-name: matches nothing/);
    expect(got).toEqual([]);
    const { r: r2 } = await restore(['--include', '*.txt', '--exclude', '*.nope']);
    expect(r2.code).toBe(1);
    expect(errorLine(r2)).toMatch(/--exclude \*\.nope: matches nothing/);
    // an anchored pattern is anchored at the snapshot's root
    const { r: r3 } = await restore(['--include', '/sub']);
    expect(r3.code).toBe(1);
    expect(errorLine(r3)).toMatch(/--include \/sub: matches nothing/);
  });
});
