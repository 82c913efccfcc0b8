/**
 * A restic user's script (test/fixtures/restic-script/nightly.sh: exit-code
 * checks, `backup --json | jq`, `snapshots --json | jq`, exclude files,
 * restore --include, forget --prune, check) runs against keep with only the
 * binary name changed, and sees what it would see from restic.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { KEEP_BIN, ROOT, tempDirs } from './helpers.js';

const tmp = tempDirs();
const SCRIPT = path.join(ROOT, 'test', 'fixtures', 'restic-script', 'nightly.sh');
const hasJq = spawnSync('jq', ['--version']).status === 0;

function makeSource(src: string): void {
  fs.mkdirSync(path.join(src, 'docs'), { recursive: true });
  fs.writeFileSync(path.join(src, 'docs', 'a.txt'), 'alpha\n');
  fs.writeFileSync(path.join(src, 'docs', 'b.txt'), 'beta\n');
  fs.writeFileSync(path.join(src, 'scratch.tmp'), 'left out by *.tmp\n');
  fs.mkdirSync(path.join(src, 'app', 'node_modules', 'dep'), { recursive: true });
  fs.writeFileSync(path.join(src, 'app', 'node_modules', 'dep', 'index.js'), 'left out by /**/node_modules\n');
  fs.writeFileSync(path.join(src, 'app', 'main.js'), 'kept\n');
  fs.mkdirSync(path.join(src, 'cache'));
  fs.writeFileSync(path.join(src, 'cache', 'CACHEDIR.TAG'), 'Signature: 8a477f597d28d172789f06886806bc55\n');
  fs.writeFileSync(path.join(src, 'cache', 'blob'), 'left out by --exclude-caches\n');
}

function run(src: string, out: string): string {
  const r = spawnSync('bash', [SCRIPT], { env: { PATH: process.env.PATH, HOME: out, KEEP_CACHE_DIR: path.join(out, 'cache'), RESTIC: KEEP_BIN, SRC: src, OUT: out }, encoding: 'utf8' });
  expect(r.status, `${r.stdout}\n${r.stderr}`).toBe(0);
  return r.stdout;
}

describe.skipIf(!hasJq)('a restic script against keep', () => {
  it('runs twice with only the binary name changed: init on exit 10, JSON lines through jq, excludes, restore, forget, check, exit 12', () => {
    const dir = tmp.make('restic-script-');
    const src = path.join(dir, 'src');
    const out = path.join(dir, 'out');
    fs.mkdirSync(out);
    makeSource(src);
    const first = run(src, out);
    expect(first).toContain('script: no repository yet (exit 10): init');
    expect(first).toContain('script: backup ok');
    // docs/a.txt, docs/b.txt, app/main.js and the cache's tag file: the rest is excluded
    expect(first).toMatch(/script: snapshot [0-9a-f]{8} files_new=4 data_added=\d+/);
    expect(first).toContain(`paths=${src} tags=nightly`);
    expect(first).toContain('script: restored 2 files');
    expect(first).toContain('script: check ok');
    expect(first).toContain('script: wrong password exit 12');
    expect(first).toContain('script: help exit 0');
    const listed = execFileSync(KEEP_BIN, ['-r', path.join(out, 'repo'), '--password-file', path.join(out, 'pass'), 'ls', 'latest'], { encoding: 'utf8' });
    expect(listed).not.toMatch(/scratch\.tmp|node_modules|cache\/blob/);
    expect(listed).toContain('CACHEDIR.TAG');

    fs.rmSync(path.join(out, 'restore'), { recursive: true });
    const second = run(src, out);
    expect(second).not.toContain('init');
    // No file data again; data_added (restic's: data and trees) may hold a tree or two: the directories
    // above src (/tmp) are stored with their metadata, and /tmp's mtime moves as other programs write there.
    const again = /script: snapshot [0-9a-f]{8} files_new=0 data_added=(\d+)/.exec(second);
    expect(again, second).not.toBeNull();
    expect(Number(again![1])).toBeLessThan(4096);
    expect(second).toContain('script: check ok');
  }, 240_000);
});
