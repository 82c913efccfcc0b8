/**
 * Each command's modules load when it runs (agent/src/cli/main.ts): `keep version`,
 * `keep help` and `keep snapshots` do not evaluate the config parsing of `keep agent`
 * (yaml, valibot, croner: @keep/core/config), nor the service, drills or admin client.
 * Which modules ran is read from V8's coverage of the real process (NODE_V8_COVERAGE):
 * in the bundle each module is a function named by its path (esbuild's lazy wrappers),
 * unbundled each is its own script.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { keep, tempDirs } from './helpers.js';

interface Coverage { result: { url: string; functions: { functionName: string; ranges: { count: number }[] }[] }[] }

/** Run keep with coverage on; the module paths whose code ran. */
async function modulesRun(args: string[], env: Record<string, string>, dir: string): Promise<string[]> {
  const cov = fs.mkdtempSync(path.join(dir, 'cov-'));
  const r = await keep(args, { env: { ...env, NODE_V8_COVERAGE: cov }, timeoutMs: 180_000 });
  expect(r.code, r.stderr).toBe(0);
  const ran = new Set<string>();
  for (const f of fs.readdirSync(cov)) {
    for (const script of (JSON.parse(fs.readFileSync(path.join(cov, f), 'utf8')) as Coverage).result) {
      const executed = script.functions.filter((fn) => fn.ranges[0]?.count > 0);
      if (script.url.endsWith('/keep.cjs')) for (const fn of executed) { if (fn.functionName.endsWith('.js')) ran.add(fn.functionName); }
      else if (executed.length > 0) ran.add(script.url);
    }
  }
  return [...ran];
}

const CONFIG_PARSING = /config-source\.js|config-schema-parts\.js|planned-runs\.js|[/\\](yaml|valibot|croner)[@/\\]|service[/\\]config\.js|commands[/\\](agent|drill|admin)\.js/;

describe('lazy commands', () => {
  const tmp = tempDirs();

  it('version, help and snapshots leave config parsing, the service, drills and admin unloaded; agent check-config loads them', async () => {
    const dir = tmp.make('keep-lazy-');
    const env = { KEEP_CACHE_DIR: path.join(dir, 'cache'), KEEP_REPO: path.join(dir, 'repo'), KEEP_PASSWORD: 'a passphrase' };
    expect((await keep(['init'], { env })).code).toBe(0);
    for (const args of [['version'], ['help'], ['snapshots']]) {
      const ran = await modulesRun(args, env, dir);
      expect(ran.length, 'coverage names the modules that ran').toBeGreaterThan(10);
      expect(ran.filter((m) => CONFIG_PARSING.test(m)), args.join(' ')).toEqual([]);
    }
    const config = path.join(dir, 'agent.yaml');
    fs.writeFileSync(config, `repository:\n  location: ${env.KEEP_REPO}\n  password_file: ${path.join(dir, 'pw')}\njobs:\n  - type: files\n    name: etc\n    paths: [/etc]\n    schedule: { cron: "*/5 * * * *" }\n`);
    fs.writeFileSync(path.join(dir, 'pw'), 'a passphrase\n', { mode: 0o600 });
    const ran = await modulesRun(['agent', 'check-config', '--config', config], env, dir);
    expect(ran.some((m) => /config-source\.js/.test(m)), 'the check itself reads the config').toBe(true);
    expect(ran.some((m) => /[/\\]yaml[@/\\]/.test(m))).toBe(true);
  }, 600_000);
});
