import { ChildProcess, execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Clock, KeepError } from '@keep/core';
import { pgProgram } from '../pg/env.js';

/** The port number only names the socket file (.s.PGSQL.N): no TCP port is ever opened. */
export const SOCKET_PORT = '5432';

export interface PrivateServerOptions {
  pgdata: string;
  /** a directory of the drill's scratch: the socket, the log and the trust-only hba file */
  dir: string;
  binDir?: string;
  /** who owns the restored files (root runs the server as them: PostgreSQL refuses root) */
  owner: { uid: number; gid: number };
  clock: Clock;
}

/**
 * A PostgreSQL server of a drill: on the restored data directory, listening
 * on a Unix socket in the drill's own directory only (listen_addresses '',
 * never the host's port), with an hba file that trusts local connections
 * (nobody else can reach the socket: the directory is the owner's, 0700),
 * archiving off (a drill must never push into the live source), logging to a
 * file the drill reads for what recovery did.
 */
export class PrivateServer {
  readonly socketDir: string;
  readonly log: string;
  private child: ChildProcess | undefined;
  private exited: Promise<number | null> | undefined;

  constructor(private readonly o: PrivateServerOptions) {
    this.socketDir = path.join(o.dir, 'socket');
    this.log = path.join(o.dir, 'postgres.log');
    fs.mkdirSync(this.socketDir, { recursive: true, mode: 0o700 });
    const hba = path.join(o.dir, 'pg_hba.conf');
    fs.writeFileSync(hba, 'local all all trust\n', { mode: 0o600 });
    for (const p of [o.dir, this.socketDir, hba]) this.chown(p);
  }

  private chown(p: string): void {
    if (process.getuid?.() === 0) fs.chownSync(p, this.o.owner.uid, this.o.owner.gid);
  }

  /** Start on the data directory with `settings` (-c name=value) on top of the drill's own. */
  start(settings: Record<string, string>): void {
    const all: Record<string, string> = {
      listen_addresses: '',
      port: SOCKET_PORT,
      unix_socket_directories: this.socketDir,
      hba_file: path.join(this.o.dir, 'pg_hba.conf'),
      archive_mode: 'off',
      logging_collector: 'off',
      log_destination: 'stderr',
      ssl: 'off',
      hot_standby: 'on',
      ...settings,
    };
    const args = ['-D', this.o.pgdata, ...Object.entries(all).flatMap(([k, v]) => ['-c', `${k}=${v}`])];
    const out = fs.openSync(this.log, 'a', 0o600);
    this.chown(this.log);
    const root = process.getuid?.() === 0;
    this.child = spawn(pgProgram('postgres', this.o.binDir), args, {
      stdio: ['ignore', out, out],
      cwd: this.o.pgdata,
      env: serverEnv(),
      ...(root ? { uid: this.o.owner.uid, gid: this.o.owner.gid } : {}),
      // its own process group: a killed drill's server and restore_command children are stopped together at the next start (scratch.ts)
      detached: true,
    });
    fs.closeSync(out);
    const child = this.child;
    // keep ending mid-drill (Ctrl-C, SIGTERM: process.exit) takes the server down with it
    const onExit = () => killGroup(child.pid, 'SIGQUIT');
    process.once('exit', onExit);
    child.once('exit', () => process.removeListener('exit', onExit));
    this.exited = new Promise((resolve) => {
      child.on('exit', (code) => resolve(code));
      child.on('error', () => resolve(-1));
    });
  }

  /** Whether the server process is still running. */
  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  logText(): string {
    try {
      return fs.readFileSync(this.log, 'utf8');
    } catch {
      return '';
    }
  }

  /** One statement through psql on the socket; its rows, or undefined while the server does not accept connections. */
  sql(query: string, user: string, db = 'postgres'): Promise<{ ok: true; rows: string[][] } | { ok: false; error: string }> {
    const args = ['-X', '-A', '-t', '-q', '-F', '\x1f', '-v', 'ON_ERROR_STOP=1', '-h', this.socketDir, '-p', SOCKET_PORT, '-U', user, '-d', db, '-c', query];
    return new Promise((resolve) => {
      execFile(pgProgram('psql', this.o.binDir), args, { env: { ...process.env, PGCONNECT_TIMEOUT: '10', PGAPPNAME: 'keep drill' }, timeout: 600_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
        if (err) resolve({ ok: false, error: (stderr || err.message).trim().split('\n').pop() ?? 'psql failed' });
        else
          resolve({
            ok: true,
            rows: stdout
              .split('\n')
              .filter((l) => l.length > 0)
              .map((l) => l.split('\x1f')),
          });
      });
    });
  }

  /** Poll `probe` until it answers (or the server dies, or `timeoutMs` passes). */
  async waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
    const until = this.o.clock.now() + timeoutMs;
    for (;;) {
      const v = await probe();
      if (v !== undefined) return v;
      if (!this.running) throw new KeepError('CORRUPT', `PostgreSQL stopped before ${what}: ${lastLines(this.logText())}`);
      if (this.o.clock.now() > until) throw new KeepError('UNAVAILABLE', `PostgreSQL: not ${what} within ${Math.round(timeoutMs / 1000)} s: ${lastLines(this.logText())}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  /** Fast shutdown (SIGINT), then immediate (SIGQUIT) and SIGKILL if it lingers. */
  async stop(): Promise<void> {
    if (!this.child || !this.running) return;
    const child = this.child;
    const escalate = [
      setTimeout(() => child.kill('SIGQUIT'), 60_000),
      setTimeout(() => child.kill('SIGKILL'), 90_000),
    ];
    child.kill('SIGINT');
    await this.exited;
    escalate.forEach(clearTimeout);
    await this.groupGone(child.pid);
  }

  /**
   * The postmaster is gone, but a restore_command it started (sh, `keep pg
   * wal-fetch`) may still run in its process group: orphaned, it went on
   * prefetching WAL and made its spool directory again, inside a scratch
   * directory the drill was removing (a CI run found one left behind). Kill the
   * group and wait, bounded, until nothing of it is left.
   */
  private async groupGone(pid: number | undefined): Promise<void> {
    if (!pid) return;
    killGroup(pid, 'SIGKILL');
    for (let waited = 0; waited < GROUP_EXIT_WAIT_MS && groupAlive(pid); waited += 50) await new Promise((r) => setTimeout(r, 50));
  }
}

/** The FATAL/PANIC (else the last) lines of a server log, for an error message. */
export function lastLines(log: string): string {
  const lines = log.trim().split('\n').filter(Boolean);
  const bad = lines.filter((l) => /FATAL|PANIC/.test(l));
  return (bad.length ? bad.slice(-2) : lines.slice(-2)).join(' | ') || '(empty log)';
}

/** The server's environment without keep's own variables: restore_command carries what wal-fetch needs inline (or an --env-file). */
function serverEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('KEEP_') && !k.startsWith('PG')) env[k] = v;
  return { ...env, LC_ALL: 'C' };
}

/** How long stop() waits for the server's process group to be empty after the postmaster exited. */
const GROUP_EXIT_WAIT_MS = 10_000;

/** Whether any process of group `pid` is left (zombies included, until they are reaped). */
function groupAlive(pid: number): boolean {
  try {
    process.kill(-pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function killGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (!pid) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // gone already
  }
}
