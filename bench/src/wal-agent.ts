import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { Keepd } from './keepd.js';
import { keepBinary, run } from './tools.js';

/** A keepd repository (default KDF cost) and the variables a direct `keep pg wal-push` reads. */
export interface WalRepo {
  keepd: Keepd;
  env: NodeJS.ProcessEnv;
}

const IS_ROOT = process.getuid?.() === 0;

/** Hand a path to the postgres user (as root: PostgreSQL and its archive_command run as it). */
export function own(p: string): void {
  if (IS_ROOT) execFileSync('chown', ['-R', 'postgres:postgres', p]);
}

/** keepd on loopback, a repository initialised with the default scrypt cost, secrets in 0600 files under `dir`. */
export async function walRepo(dir: string): Promise<WalRepo> {
  const keepd = await Keepd.start(path.join(dir, 'keepd'));
  const secrets = path.join(dir, 'secrets');
  fs.mkdirSync(secrets, { mode: 0o700 });
  fs.writeFileSync(path.join(secrets, 'password'), 'wal bench passphrase\n', { mode: 0o600 });
  fs.writeFileSync(path.join(secrets, 'token'), `${keepd.token}\n`, { mode: 0o600 });
  own(secrets);
  const env = { ...process.env, KEEP_REPO: `grpc://127.0.0.1:${keepd.port}`, KEEP_PASSWORD_FILE: path.join(secrets, 'password'), KEEP_TOKEN_FILE: path.join(secrets, 'token'), KEEP_CACHE_DIR: path.join(dir, 'cache') };
  await run(keepBinary(), ['init', '--json'], { env });
  return { keepd, env };
}

/** `keep agent run` with one postgres job (source `source`, pgdata `pgdata`); as root, run as the postgres user. */
export class WalAgent {
  private constructor(
    private readonly child: ChildProcess,
    readonly socket: string,
    readonly log: string[],
  ) {}

  /** `o.home`: the agent's directory under `dir` (default agent); `o.bin`: another build's `keep` (an A/B run). */
  static async start(dir: string, repo: WalRepo, o: { source: string; pgdata: string; connection?: string; home?: string; bin?: string }): Promise<WalAgent> {
    const home = path.join(dir, o.home ?? 'agent');
    fs.mkdirSync(home, { recursive: true });
    const cfg = path.join(home, 'agent.yaml');
    fs.writeFileSync(
      cfg,
      `repository:
  location: ${repo.env.KEEP_REPO}
  token_file: ${repo.env.KEEP_TOKEN_FILE}
  password_file: ${repo.env.KEEP_PASSWORD_FILE}
state_dir: ${path.join(home, 'state')}
jobs:
  - type: postgres
    name: ${o.source}
    pgdata: ${o.pgdata}
    ${o.connection ?? ''}
    schedule: { every: 24h }
`,
    );
    own(home);
    const bin = o.bin ?? keepBinary();
    const [cmd, args] = IS_ROOT ? ['runuser', ['-u', 'postgres', '--', bin, 'agent', 'run', '--config', cfg]] : [bin, ['agent', 'run', '--config', cfg]];
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const log: string[] = [];
    child.stdout!.on('data', (b: Buffer) => log.push(...b.toString().split('\n').filter(Boolean)));
    child.stderr!.on('data', (b: Buffer) => log.push(b.toString()));
    const socket = path.join(home, 'state', 'agent.sock');
    const until = Date.now() + 60_000;
    while (!(await answers(socket))) {
      if (Date.now() > until || child.exitCode !== null) throw new Error(`keep agent run did not open ${socket}:\n${log.slice(-10).join('\n')}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    return new WalAgent(child, socket, log);
  }

  /** The agent's own pid (its log lines carry it; under runuser the child is runuser). */
  get pid(): number {
    const pid = this.log.map((l) => /"pid":(\d+)/.exec(l)?.[1]).find(Boolean);
    return pid ? Number(pid) : this.child.pid!;
  }

  /** The stage marks (ms since the push began) of each segment the agent archived, from its 'wal archived' log lines. */
  stages(): Record<string, number>[] {
    const out: Record<string, number>[] = [];
    for (const l of this.log) {
      if (!l.includes('"wal archived"')) continue;
      try {
        const s = (JSON.parse(l) as { stages_ms?: Record<string, number> }).stages_ms;
        if (s) out.push(s);
      } catch {
        /* not one JSON line */
      }
    }
    return out;
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    // runuser does not pass signals on: the agent's own pid
    process.kill(this.pid, 'SIGTERM');
    await new Promise((r) => this.child.once('close', r));
  }
}

function answers(socket: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = net.connect(socket);
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
}

/** One wal-push request on the agent's socket, as `keep pg wal-push` sends it; resolves with the agent's answer. */
export function askAgent(socket: string, file: string, source: string): Promise<{ ok: boolean; result?: { already: boolean; bytes_sent: number }; error?: string }> {
  return new Promise((resolve, reject) => {
    const c = net.connect(socket);
    let text = '';
    c.once('connect', () => c.write(`${JSON.stringify({ op: 'wal-push', file, source })}\n`));
    c.on('data', (b: Buffer) => {
      text += b.toString();
      if (text.includes('\n')) {
        c.destroy();
        resolve(JSON.parse(text.slice(0, text.indexOf('\n'))));
      }
    });
    c.on('error', reject);
  });
}
