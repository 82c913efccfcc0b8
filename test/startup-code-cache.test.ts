/**
 * The agent's V8 code cache (agent/src/startup/code-cache.ts): written after a
 * command that exits 0, used by the next run of that command, and never able to
 * run other code than the bundle's: a damaged cache, one of another build, one
 * others may write, or an unwritable cache directory only cost compile time.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { keep, ROOT, tempDirs } from './helpers.js';

const LOADER = path.join(ROOT, 'agent/dist/startup/code-cache.js');

/** `keep help` with timing marks on: its output and what it did with the code cache. */
async function help(cacheDir: string): Promise<{ usage: string; cache: string }> {
  const r = await keep(['help'], { env: { KEEP_CACHE_DIR: cacheDir, KEEP_DEBUG_TIMING: '1' } });
  expect(r.code, r.stderr).toBe(0);
  expect(r.stdout).toMatch(/^keep — deduplicating/);
  return { usage: r.stdout, cache: /code cache (\w+)/.exec(r.stderr)?.[1] ?? 'not reported' };
}

/** Run a script through the loader, as bin/keep.js runs the bundle (same V8 flags). */
function viaLoader(script: string, cacheDir: string): { out: string; cache: string } {
  const r = spawnSync(
    process.execPath,
    ['--max-semi-space-size=1', '--expose-gc', '--input-type=module', '-e', `(await import(${JSON.stringify(LOADER)})).runBundle(${JSON.stringify(script)}, ${JSON.stringify(cacheDir)}, process.env, 'fixture')`],
    { env: { ...process.env, KEEP_DEBUG_TIMING: '1', KEEP_NO_CODE_CACHE: '' }, encoding: 'utf8' },
  );
  expect(r.status, r.stderr).toBe(0);
  return { out: r.stdout, cache: /code cache (\w+)/.exec(r.stderr)?.[1] ?? 'not reported' };
}

describe('V8 code cache of the agent bundle', () => {
  const tmp = tempDirs();

  it('is written after a successful command, used by the next, private to its user', async () => {
    const dir = path.join(tmp.make('keep-code-cache-'), 'cache');
    const first = await help(dir);
    expect(first.cache).toBe('none');
    const file = path.join(dir, 'code-help.v8');
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(fs.statSync(dir).mode & 0o777).toBe(0o700);
    const second = await help(dir);
    expect(second).toEqual({ usage: first.usage, cache: 'used' });
    // A failed command writes none.
    const failed = await keep(['no-such-command'], { env: { KEEP_CACHE_DIR: dir } });
    expect(failed.code).not.toBe(0);
    expect(fs.existsSync(path.join(dir, 'code-no-such-command.v8'))).toBe(false);
    // KEEP_NO_CODE_CACHE=1: neither read nor written.
    const off = await keep(['help'], { env: { KEEP_CACHE_DIR: dir, KEEP_NO_CODE_CACHE: '1', KEEP_DEBUG_TIMING: '1' } });
    expect(off.stderr).toMatch(/code cache none/);
  });

  it("a restore's and a backup's cache are used by the next ones (their worker pools' V8 flag does not void it)", async () => {
    const dir = tmp.make('keep-code-cache-');
    const env = { KEEP_CACHE_DIR: path.join(dir, 'cache'), KEEP_REPO: path.join(dir, 'repo'), KEEP_PASSWORD: 'code cache', KEEP_DEBUG_TIMING: '1' };
    const src = path.join(dir, 'src');
    fs.mkdirSync(src);
    fs.writeFileSync(path.join(src, 'f'), 'restored twice');
    expect((await keep(['init', '--kdf-cost', '12'], { env })).code).toBe(0);
    const caches: string[] = [];
    for (const args of [['backup', src], ['backup', src], ['restore', 'latest', '--target', path.join(dir, 'r1')], ['restore', 'latest', '--target', path.join(dir, 'r2')]]) {
      const r = await keep(args, { env });
      expect(r.code, r.stderr).toBe(0);
      caches.push(/code cache (\w+)/.exec(r.stderr)?.[1] ?? 'not reported');
    }
    expect(caches).toEqual(['none', 'used', 'none', 'used']);
  });

  it('a damaged, foreign or writable-by-others cache is ignored and replaced', async () => {
    const dir = path.join(tmp.make('keep-code-cache-'), 'cache');
    const good = await help(dir);
    const file = path.join(dir, 'code-help.v8');
    const original = fs.readFileSync(file);
    const damage: Array<[string, (b: Buffer) => Buffer]> = [
      ['one byte of the V8 data flipped', (b) => { const c = Buffer.from(b); c[c.length >> 1] ^= 0x40; return c; }],
      ['truncated', (b) => b.subarray(0, b.length >> 1)],
      ['made from another bundle', (b) => { const c = Buffer.from(b); c[8] ^= 1; return c; }],
      ['not a cache at all', () => Buffer.from('garbage')],
    ];
    for (const [what, f] of damage) {
      fs.writeFileSync(file, f(original), { mode: 0o600 });
      expect(await help(dir), what).toEqual({ usage: good.usage, cache: 'none' });
      expect(await help(dir), `${what}: replaced by a good one`).toEqual({ usage: good.usage, cache: 'used' });
    }
    // Others could have written it: not used (it is code).
    fs.chmodSync(file, 0o666);
    expect((await help(dir)).cache).toBe('none');
    // An unwritable cache directory costs the cache, nothing else.
    const notADir = path.join(tmp.make('keep-code-cache-'), 'file');
    fs.writeFileSync(notADir, 'x');
    expect(await help(notADir)).toEqual({ usage: good.usage, cache: 'none' });
  });

  it('a cache made from an earlier build of the same length never runs the old code', () => {
    const d = tmp.make('keep-code-cache-');
    const cache = path.join(d, 'cache');
    const script = path.join(d, 'bundle.cjs');
    const body = (word: string) => `function say() { process.stdout.write(${JSON.stringify(word)}); }\nsay();\n`;
    fs.writeFileSync(script, body('first build'));
    expect(viaLoader(script, cache)).toEqual({ out: 'first build', cache: 'none' });
    expect(viaLoader(script, cache)).toEqual({ out: 'first build', cache: 'used' });
    // Same length, other code: V8 alone would take the old cache (it checks the length only).
    fs.writeFileSync(script, body('other build'));
    expect(body('other build').length).toBe(body('first build').length);
    expect(viaLoader(script, cache)).toEqual({ out: 'other build', cache: 'none' });
    expect(viaLoader(script, cache)).toEqual({ out: 'other build', cache: 'used' });
  });
});
