/**
 * Every keep and keepd command and subcommand prints its usage for --help,
 * -h and `help COMMAND`: exit 0, usage on stdout, nothing on stderr, and no
 * repository touched (KEEP_REPO / --data name a directory that must stay
 * absent). The usage names every flag the command parses (read from the
 * command's source: a flag added without its usage fails here).
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT, tempDirs } from './helpers.js';
import { runKeep, runKeepd } from './keepd-harness.js';

const tmp = tempDirs();
/** `COMMAND --help`'s stdout, by command: filled by the first test of each binary, read by the flag tests after it. */
const keepUsage = new Map<string, string>();
const keepdUsage = new Map<string, string>();

const KEEP_COMMANDS = ['init', 'backup', 'snapshots', 'forget', 'tag', 'agent', 'agent check-config', 'agent run', 'agent status', 'agent install', 'admin', 'admin status', 'admin alerts', 'admin report', 'admin forget', 'admin prune', 'admin check', 'admin token', 'admin audit', 'restore', 'drill', 'ls', 'diff', 'find', 'dump', 'cat', 'stats', 'check', 'key', 'key add', 'key list', 'key remove', 'key passwd', 'pg', 'pg backup', 'pg wal-push', 'pg wal-fetch', 'pg restore', 'pg config', 'pg info', 'version', 'help'];
const KEEPD_COMMANDS = ['init', 'serve', 'token', 'token create', 'token list', 'token revoke', 'tls', 'tls init', 'forget', 'prune', 'sync', 'promote', 'check', 'status', 'alerts', 'report', 'check-config', 'audit', 'audit verify', 'audit list', 'rebuild-index', 'install', 'version', 'help'];

/** Run `fn` over `items`, four at a time (each spawns a process). */
async function eachLimited<T>(items: T[], fn: (item: T) => Promise<void>): Promise<void> {
  const queue = [...items];
  await Promise.all(Array.from({ length: 4 }, async () => { for (let x = queue.shift(); x !== undefined; x = queue.shift()) await fn(x); }));
}

/**
 * The forms that ask for help with the i-th command: COMMAND --help always,
 * then COMMAND -h or help COMMAND in turn (every form is spawned: halved to
 * spare the machine).
 */
function helpForms(command: string, i: number): string[][] {
  const words = command.split(' ');
  return [[...words, '--help'], i % 2 ? ['help', ...words] : [...words, '-h']];
}

/** Where the usage of `command` starts: "usage: keep backup" (pg's overview: "keep pg —"). */
function usageHead(bin: string, command: string): RegExp {
  const escaped = `${bin} ${command}`.replace(/[-]/g, '\\-');
  return new RegExp(`^(usage: ${escaped}\\b|${escaped} —)`);
}

/** Option names in an object literal of parseArgs specs: `name: { type: 'string' }`, `'a-b': { type: 'boolean' }`. */
function optionNames(source: string): string[] {
  return [...source.matchAll(/['"]?([a-z][a-z0-9-]*)['"]?\s*:\s*\{\s*type:\s*'(?:string|boolean)'/g)].map((m) => m[1]);
}

function filesUnder(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true, recursive: true }).filter((e) => e.isFile() && e.name.endsWith('.ts')).map((e) => path.join(e.parentPath, e.name));
}

describe('keep --help', { timeout: 300_000 }, () => {
  it('every command and subcommand: usage on stdout, exit 0, no repository touched', async () => {
    const dir = tmp.make('keep-help-');
    const repo = path.join(dir, 'repo');
    // No passphrase, no token: help needs neither.
    await eachLimited(KEEP_COMMANDS.flatMap((c, i) => helpForms(c, i).map((argv) => ({ c, argv }))), async ({ c, argv }) => {
      const r = await runKeep(argv, { KEEP_REPO: repo }, { cwd: dir });
      if (argv.at(-1) === '--help') keepUsage.set(c, r.stdout);
      expect(r.code, `keep ${argv.join(' ')}: ${r.stderr}`).toBe(0);
      expect(r.stderr).toBe('');
      expect(r.stdout, `keep ${argv.join(' ')}`).toMatch(usageHead('keep', c === 'help' ? 'help' : c));
    });
    expect(fs.existsSync(repo)).toBe(false);
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  it('keep, keep help, keep --help and -h: the overview with every command and the exit codes', async () => {
    for (const argv of [[], ['help'], ['--help'], ['-h']]) {
      const r = await runKeep(argv, {});
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/^keep — /);
      for (const c of KEEP_COMMANDS.filter((x) => !x.includes(' '))) expect(r.stdout).toMatch(new RegExp(`^  ${c}\\b`, 'm'));
      expect(r.stdout).toMatch(/exit codes: 0 ok, 1 fatal error, 2 bad usage, 3 backup saved .*\n.*4 damage found .* 10 no repository, 11 repository locked,\n12 wrong passphrase, 130 interrupted/);
    }
  });

  it("COMMAND --help compiles help's code: it fills help's code cache, not the command's", async () => {
    const cacheDir = tmp.make('keep-help-cache-');
    const r = await runKeep(['backup', '--help'], { KEEP_CACHE_DIR: cacheDir });
    expect(r.code, r.stderr).toBe(0);
    expect(fs.readdirSync(cacheDir).filter((f) => f.startsWith('code-'))).toEqual(['code-help.v8']);
  });

  it('an unknown command, with or without --help, is a usage error (2)', async () => {
    for (const argv of [['frobnicate'], ['frobnicate', '--help'], ['help', 'frobnicate']]) {
      const r = await runKeep(argv, {});
      expect(r.code).toBe(2);
      expect(r.stderr).toBe('keep: error: unknown command frobnicate (see keep help)\n');
    }
  });

  it('names every flag each command parses', async () => {
    const files = filesUnder(path.join(ROOT, 'agent', 'src')).filter((f) => /\bparse\(/.test(fs.readFileSync(f, 'utf8')) && /terminal\/args\.js'/.test(fs.readFileSync(f, 'utf8')));
    expect(files.length).toBeGreaterThan(5);
    const all = (await runKeep(['help'], {})).stdout;
    const usage = keepUsage;
    expect([...usage.keys()].sort()).toEqual([...KEEP_COMMANDS].sort());
    for (const f of files) {
      // A command's own file (commands/backup.ts) is held to its own usage and its subcommands'; another file to all of keep's.
      const name = path.basename(f, '.ts');
      const text = usage.has(name) ? [...usage].filter(([c]) => c === name || c.startsWith(`${name} `)).map(([, t]) => t).join('\n') : [all, ...usage.values()].join('\n');
      for (const flag of optionNames(fs.readFileSync(f, 'utf8'))) expect(text, `${path.relative(ROOT, f)} parses --${flag}`).toContain(`--${flag}`);
    }
  });
});

describe('keepd --help', { timeout: 300_000 }, () => {
  it('every command and subcommand: usage on stdout, exit 0, no data directory touched', async () => {
    const dir = tmp.make('keepd-help-');
    const data = path.join(dir, 'data');
    await eachLimited(KEEPD_COMMANDS.flatMap((c, i) => helpForms(c, i).map((argv) => ({ c, argv }))), async ({ c, argv }) => {
      // --data after COMMAND --help; \`help\` takes only command words
      const r = await runKeepd(argv[0] === 'help' ? argv : [...argv, '--data', data], { cwd: dir });
      if (argv.at(-1) === '--help') keepdUsage.set(c, r.stdout);
      expect(r.code, `keepd ${argv.join(' ')}: ${r.stderr}`).toBe(0);
      expect(r.stderr).toBe('');
      expect(r.stdout, `keepd ${argv.join(' ')}`).toMatch(usageHead('keepd', c));
    });
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  it('keepd, keepd help and --help: the overview with every command and the exit codes', async () => {
    for (const argv of [[], ['help'], ['--help'], ['-h']]) {
      const r = await runKeepd(argv);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/^keepd — /);
      for (const c of KEEPD_COMMANDS.filter((x) => !x.includes(' '))) expect(r.stdout).toMatch(new RegExp(`^  ${c}\\b`, 'm'));
      expect(r.stdout).toMatch(/exit codes: 0 ok, 1 fatal error, 2 bad usage, 4 damage found \(check\), 10 no repository,\n11 repository locked, 130 interrupted/);
    }
  });

  it('an unknown command is a usage error (2)', async () => {
    const r = await runKeepd(['frobnicate', '--help']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('keepd: error: unknown command frobnicate (see keepd help)\n');
  });

  it('names every flag each command parses', async () => {
    const main = fs.readFileSync(path.join(ROOT, 'server', 'src', 'cli', 'main.ts'), 'utf8');
    const forgetFlags = [...fs.readFileSync(path.join(ROOT, 'packages', 'core', 'src', 'snapshot', 'forget-flags.ts'), 'utf8').matchAll(/^\s+'([a-z-]+)',$/gm)].map((m) => m[1]);
    expect(forgetFlags).toContain('keep-within-daily');
    // Each command's body in main.ts: `async NAME(argv) { ... }` up to the next one.
    const bodies = [...main.matchAll(/^ {2}async '?([a-z-]+)'?\(argv\) \{$/gm)];
    expect(bodies.map((m) => m[1])).toEqual(expect.arrayContaining(['init', 'serve', 'token', 'tls', 'check', 'forget', 'prune', 'sync', 'promote', 'status', 'audit', 'rebuild-index', 'install']));
    for (const [i, m] of bodies.entries()) {
      const body = main.slice(m.index, bodies[i + 1]?.index ?? main.length);
      const flags = [...(body.includes('args(') ? ['data'] : []), ...optionNames(body), ...(body.includes('...FORGET_FLAGS') ? forgetFlags : [])];
      const subs = KEEPD_COMMANDS.filter((c) => c === m[1] || c.startsWith(`${m[1]} `));
      const text = subs.map((c) => keepdUsage.get(c) ?? '').join('\n');
      for (const flag of flags) expect(text, `keepd ${m[1]} parses --${flag}`).toContain(`--${flag}`);
    }
  });
});
