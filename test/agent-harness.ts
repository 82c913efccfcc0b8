/**
 * A real `keep agent run` child process for tests, its JSON log lines
 * parsed as they come, and the config and secret files it reads.
 */
import { ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { KEEP_BIN, ROOT } from './helpers.js';

export interface LogLine {
  level: number;
  msg: string;
  job?: string;
  reason?: string;
  error?: string;
  [k: string]: unknown;
}

/** `keep agent run ARGS` with its JSON log lines as they come; as root with asPostgres, run as the postgres user (runuser). */
export class Agent {
  readonly child: ChildProcess;
  readonly lines: LogLine[] = [];
  stderr = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(args: string[], opts: { asPostgres?: boolean } = {}) {
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('KEEP_')) env[k] = v;
    const [cmd, argv] = opts.asPostgres && process.getuid?.() === 0 ? ['runuser', ['-u', 'postgres', '--', KEEP_BIN, 'agent', 'run', ...args]] : [KEEP_BIN, ['agent', 'run', ...args]];
    this.child = spawn(cmd, argv, { env, cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let pending = '';
    this.child.stdout!.on('data', (b: Buffer) => {
      pending += b.toString();
      let nl: number;
      while ((nl = pending.indexOf('\n')) >= 0) {
        this.lines.push(JSON.parse(pending.slice(0, nl)));
        pending = pending.slice(nl + 1);
      }
    });
    this.child.stderr!.on('data', (b: Buffer) => (this.stderr += b.toString()));
    this.exited = new Promise((resolve) => this.child.on('close', (code, signal) => resolve({ code, signal })));
    running.add(this);
    void this.exited.then(() => running.delete(this));
  }

  /** Wait until `count` log lines match. */
  async waitFor(pred: (l: LogLine) => boolean, count = 1, timeoutMs = 60_000): Promise<LogLine[]> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const hits = this.lines.filter(pred);
      if (hits.length >= count) return hits;
      if (Date.now() > until) throw new Error(`timed out waiting for log lines; log:\n${this.lines.map((l) => JSON.stringify(l)).join('\n')}\nstderr: ${this.stderr}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  runs(job: string, result: 'succeeded' | 'failed'): LogLine[] {
    return this.lines.filter((l) => l.job === job && l.msg === `run ${result}`);
  }
}

const running = new Set<Agent>();

/** SIGKILL every agent still running (afterAll safety net). */
export function killAllAgents(): void {
  for (const a of running) a.child.kill('SIGKILL');
}

export function writeSecret(dir: string, name: string, text: string): string {
  const f = path.join(dir, name);
  fs.writeFileSync(f, `${text}\n`, { mode: 0o600 });
  return f;
}

export function agentConfig(repository: string[], jobs: string): string {
  return `repository:\n${repository.map((l) => `  ${l}\n`).join('')}jobs:\n${jobs}`;
}


/** An agent config (YAML): the repository `env` names (its token and password files), the state directory, then `jobs` (the list's items). */
export function agentConfigYaml(url: string, env: Record<string, string | undefined>, stateDir: string, jobs: string): string {
  return `repository:
  location: ${url}
  token_file: ${env.KEEP_TOKEN_FILE}
  password_file: ${env.KEEP_PASSWORD_FILE}
state_dir: ${stateDir}
jobs:
${jobs}`;
}
