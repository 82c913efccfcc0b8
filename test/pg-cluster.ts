/**
 * A real PostgreSQL for the tests that need one (pg-pitr, agent-postgres):
 * its binaries found (or installed through scripts/test-deps.mjs as root),
 * its programs run as the postgres user when the tests run as root, and a
 * cluster on a private Unix socket.
 */
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { ROOT } from './helpers.js';
import { createToken, Keepd, keepdInit, runKeep, startKeepd } from './keepd-harness.js';

// ---------------------------------------------------------------- finding (or installing) PostgreSQL

function findPgBin(): string | undefined {
  try {
    for (const v of fs.readdirSync('/usr/lib/postgresql').filter((d) => /^\d+$/.test(d)).sort((a, b) => Number(b) - Number(a))) {
      const bin = path.join('/usr/lib/postgresql', v, 'bin');
      if (fs.existsSync(path.join(bin, 'initdb')) && fs.existsSync(path.join(bin, 'pgbench'))) return bin;
    }
  } catch {
    // not installed
  }
  return undefined;
}

export const IS_ROOT = process.getuid?.() === 0;
export let PG_BIN = findPgBin();
if (!PG_BIN && IS_ROOT) {
  try {
    execFileSync(process.execPath, [path.join(ROOT, 'scripts', 'test-deps.mjs')], { stdio: 'inherit', timeout: 900_000 });
  } catch {
    // reported below
  }
  PG_BIN = findPgBin();
}
const hasPostgresUser = (() => {
  try {
    return /^postgres:/m.test(fs.readFileSync('/etc/passwd', 'utf8'));
  } catch {
    return false;
  }
})();
export const SKIP = !PG_BIN
  ? `PostgreSQL is not installed and could not be installed${IS_ROOT ? '' : ' (not root)'}: run \`node scripts/test-deps.mjs\` as root, or apt-get install postgresql`
  : IS_ROOT && !hasPostgresUser
    ? 'running as root but there is no postgres user to run PostgreSQL as (PostgreSQL refuses root)'
    : undefined;

// ---------------------------------------------------------------- running PostgreSQL programs

export interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

function cleanEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('KEEP_') && !k.startsWith('PG')) env[k] = v;
  env.LC_ALL = 'C';
  return env;
}

/** Run a PostgreSQL program; as root through `runuser -u postgres` (PostgreSQL refuses to run as root). */
export function pg(program: string, args: string[], opts: { timeoutMs?: number; asPostgres?: boolean } = {}): Promise<Result> {
  const bin = path.join(PG_BIN!, program);
  const [cmd, argv] = IS_ROOT && opts.asPostgres !== false ? ['runuser', ['-u', 'postgres', '--', bin, ...args]] : [bin, args];
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, argv, { env: cleanEnv(), cwd: '/', stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b));
    child.stderr.on('data', (b: Buffer) => (stderr += b));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 120_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

export async function pgOk(program: string, args: string[], opts: { timeoutMs?: number } = {}): Promise<string> {
  const r = await pg(program, args, opts);
  if (r.code !== 0) throw new Error(`${program} ${args.join(' ')} exited ${r.code}\n${r.stderr}\n${r.stdout}`);
  return r.stdout;
}

/** Hand a path to the user PostgreSQL runs as. */
export function own(p: string): void {
  if (IS_ROOT) execFileSync('chown', ['-R', 'postgres:postgres', p]);
}

export class Cluster {
  constructor(
    readonly data: string,
    readonly sock: string,
    readonly port: number,
    readonly log: string,
  ) {}

  conn(): string[] {
    return ['-h', this.sock, '-p', String(this.port), '-U', 'postgres'];
  }

  /** One SQL statement (its own transaction), rows unaligned, fields separated by |. */
  async sql(query: string, db = 'postgres'): Promise<string> {
    return (await pgOk('psql', [...this.conn(), '-X', '-A', '-t', '-q', '-v', 'ON_ERROR_STOP=1', '-d', db, '-c', query])).trim();
  }

  async start(extra: string[] = []): Promise<void> {
    const r = await pg('pg_ctl', ['-D', this.data, '-l', this.log, '-w', '-t', '120', '-o', [`-p ${this.port}`, `-k ${this.sock}`, ...extra].join(' '), 'start'], { timeoutMs: 150_000 });
    if (r.code !== 0) throw new Error(`pg_ctl start failed (${r.code}): ${r.stderr}\n${this.logText()}`);
  }

  async stop(mode: 'fast' | 'immediate' = 'fast'): Promise<void> {
    if (!fs.existsSync(path.join(this.data, 'postmaster.pid'))) return;
    await pg('pg_ctl', ['-D', this.data, '-m', mode, '-w', 'stop'], { timeoutMs: 60_000 });
  }

  logText(): string {
    try {
      return fs.readFileSync(this.log, 'utf8');
    } catch {
      return '(no log)';
    }
  }
}

/**
 * initdb and start `c` as a primary whose archive_command is `keep pg config`'s
 * (the repository variables of `env` inline, for the direct fallback), told
 * to hand segments to the agent listening on `socket`.
 */
export async function startPrimaryArchivingThroughAgent(c: Cluster, env: Record<string, string>, socket: string, source = 'db'): Promise<void> {
  await pgOk('initdb', ['-D', c.data, '-U', 'postgres', '-A', 'trust', '--no-sync', '-E', 'UTF8', '--locale=C']);
  const config = await runKeep(['pg', 'config', '--source', source, '--json'], env);
  if (config.code !== 0) throw new Error(`keep pg config exited ${config.code}: ${config.stderr}`);
  const archiveCommand = (JSON.parse(config.stdout).archive_command as string).replace('pg wal-push', `pg wal-push --socket ${socket}`);
  fs.appendFileSync(
    path.join(c.data, 'postgresql.conf'),
    ['', "listen_addresses = ''", 'wal_level = replica', 'archive_mode = on', `archive_command = '${archiveCommand.replace(/'/g, "''")}'`, 'shared_buffers = 32MB', ''].join('\n'),
  );
  await c.start();
}

export async function waitUntil(what: string, pred: () => Promise<boolean>, timeoutMs: number, log?: () => string): Promise<number> {
  const started = Date.now();
  while (!(await pred())) {
    if (Date.now() - started > timeoutMs) throw new Error(`${what}: not within ${timeoutMs / 1000} s${log ? `\n${log().slice(-4000)}` : ''}`);
    await sleep(100);
  }
  return Date.now() - started;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));


// ---------------------------------------------------------------- a keepd PostgreSQL's own user can reach

/**
 * keepd (data under DIR/keepd) with an agent token per source, and the
 * passphrase and tokens in DIR/secrets, readable by the postgres user:
 * archive_command and restore_command run as it. envFor(source) gives the
 * repository variables with that source's token.
 */
export async function keepdForPostgres(dir: string, passphrase: string, sources: string[]): Promise<{ keepd: Keepd; envFor: (source: string) => Record<string, string> }> {
  const data = path.join(dir, 'keepd');
  await keepdInit(data);
  const tokens = await Promise.all(sources.map((s) => createToken(data, 'agent', { sources: [s] })));
  const keepd = await startKeepd(data);
  const secrets = path.join(dir, 'secrets');
  fs.mkdirSync(secrets, { mode: 0o700 });
  fs.writeFileSync(path.join(secrets, 'password'), `${passphrase}\n`, { mode: 0o600 });
  sources.forEach((s, i) => fs.writeFileSync(path.join(secrets, `token-${s}`), `${tokens[i].token}\n`, { mode: 0o600 }));
  own(secrets);
  return { keepd, envFor: (s) => ({ KEEP_REPO: keepd.url, KEEP_PASSWORD_FILE: path.join(secrets, 'password'), KEEP_TOKEN_FILE: path.join(secrets, `token-${s}`) }) };
}
