import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { errorLine, generateTree, keep, keepJson, summarize, tempDirs } from './helpers.js';

/**
 * The agent remembers its repository's public KDF parameters (salt, N, r, p)
 * so the next command starts scrypt before anything else (startup/early-kek.ts).
 * What matters: nothing secret is written, a wrong passphrase still fails the
 * same way, and a stale or damaged cache changes nothing but speed.
 */
const dirs = tempDirs();

/** The KDF parameter files in the cache directory (which holds the agent's other caches too: code, unchanged directories). */
function cacheFiles(cache: string): string[] {
  return fs.existsSync(cache) ? fs.readdirSync(cache).filter((f) => /^kdf-.*\.json$/.test(f)).map((f) => path.join(cache, f)) : [];
}

describe('KDF parameter cache', () => {
  const dir = dirs.make('kdf-cache-');
  const cache = path.join(dir, 'cache');
  const repo = path.join(dir, 'repo');
  const password = 'a passphrase only the test knows';
  const env = { KEEP_REPO: repo, KEEP_PASSWORD: password, KEEP_CACHE_DIR: cache };
  const src = path.join(dir, 'src');
  generateTree(src, { smallFiles: 20, largeFiles: [], compressibleSize: 0 });

  it('init remembers the key file salt and parameters, and nothing secret', async () => {
    const init = await keepJson(['init', '--kdf-cost', '12'], { env });
    const files = cacheFiles(cache);
    expect(files).toHaveLength(1);
    expect(fs.statSync(files[0]).mode & 0o077).toBe(0);
    const text = fs.readFileSync(files[0], 'utf8');
    const remembered = JSON.parse(text) as { salt: string; N: number; r: number; p: number }[];
    const keyFile = JSON.parse(fs.readFileSync(path.join(repo, 'keys', `${init.key}.json`), 'utf8'));
    expect(remembered).toEqual([{ salt: keyFile.kdf.salt, N: 4096, r: 8, p: 1 }]);
    expect(text).not.toContain(password);
    expect(text).not.toContain(keyFile.data);
  });

  it('backs up and restores with the head start; a wrong passphrase exits 12 and changes nothing', async () => {
    const b = await keepJson(['backup', src], { env });
    expect(b.files_new).toBe(summarize(src).files);
    expect(b.bytes_sent).toBeGreaterThan(0);
    const before = fs.readdirSync(path.join(repo, 'snapshots')).length;
    const wrong = await keep(['backup', src], { env: { ...env, KEEP_PASSWORD: 'not it' } });
    expect(wrong.code).toBe(12);
    expect(errorLine(wrong)).toMatch(/wrong passphrase/);
    expect(fs.readdirSync(path.join(repo, 'snapshots'))).toHaveLength(before);
    // A restore starts its workers before the key: a wrong passphrase still ends it (exit 12), creating nothing.
    const target = path.join(path.dirname(repo), 'not-restored');
    const refused = await keep(['restore', 'latest', '--target', target], { env: { ...env, KEEP_PASSWORD: 'not it' }, timeoutMs: 20_000 });
    expect(refused.code).toBe(12);
    expect(fs.existsSync(target)).toBe(false);
  });

  it('a damaged cache file or a changed key is no obstacle', async () => {
    for (const f of cacheFiles(cache)) fs.writeFileSync(f, '{not json');
    expect((await keepJson(['snapshots'], { env })).length).toBe(1);
    // the cache is rewritten on the next unlock
    expect(JSON.parse(fs.readFileSync(cacheFiles(cache)[0], 'utf8'))).toHaveLength(1);

    // a new passphrase (new key file, new salt): the remembered parameters are stale until this unlock
    const newPassword = 'the next passphrase';
    await keepJson(['key', 'passwd'], { env: { ...env, KEEP_NEW_PASSWORD: newPassword } });
    const env2 = { ...env, KEEP_PASSWORD: newPassword };
    expect((await keepJson(['snapshots'], { env: env2 })).length).toBe(1);
    const old = await keep(['snapshots'], { env });
    expect(old.code).toBe(12);
    const salts = (JSON.parse(fs.readFileSync(cacheFiles(cache)[0], 'utf8')) as { salt: string }[]).map((k) => k.salt);
    const keyFiles = fs.readdirSync(path.join(repo, 'keys')).map((f) => JSON.parse(fs.readFileSync(path.join(repo, 'keys', f), 'utf8')).kdf.salt);
    expect(salts.sort()).toEqual(keyFiles.sort());
  });

  it('KEEP_NO_KDF_CACHE writes no KDF parameters', async () => {
    const other = path.join(dir, 'cache-off');
    const r = await keepJson(['snapshots'], { env: { ...env, KEEP_PASSWORD: 'the next passphrase', KEEP_CACHE_DIR: other, KEEP_NO_KDF_CACHE: '1' } });
    expect(r.length).toBe(1);
    expect(cacheFiles(other)).toEqual([]);
  });
});
