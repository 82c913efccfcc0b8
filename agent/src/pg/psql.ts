import { ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import { KeepError } from '@keep/core';
import { pgProgram } from './env.js';

export interface PgConnectOptions {
  /** a host name or a Unix socket directory (psql -h); default: libpq's (PGHOST, then the compiled-in socket dir) */
  host?: string;
  port?: string;
  user?: string;
  dbname?: string;
  /** where psql lives (default: PATH, then /usr/lib/postgresql/N/bin) */
  binDir?: string;
}

const FIELD = '\x1f';

/**
 * One long-lived psql session driven through its stdin: the non-exclusive
 * backup API needs pg_backup_start and pg_backup_stop in the same session
 * (closing it aborts the backup, which is what should happen if keep dies).
 * Each query is followed by an \echo of a random marker, so the rows of one
 * answer are the lines before it. Values are unaligned, fields separated by
 * \x1f; queries return multi-line text hex-encoded.
 */
export class PsqlSession {
  private readonly child: ChildProcessWithoutNullStreams;
  private buffer = '';
  private stderr = '';
  private waiting: { marker: string; resolve: (rows: string[][]) => void; reject: (e: Error) => void } | undefined;
  private exited: Error | undefined;

  constructor(opts: PgConnectOptions) {
    const args = ['-X', '-q', '-A', '-t', '-F', FIELD, '-v', 'ON_ERROR_STOP=1', '-v', 'VERBOSITY=terse'];
    if (opts.host) args.push('-h', opts.host);
    if (opts.port) args.push('-p', opts.port);
    if (opts.user) args.push('-U', opts.user);
    args.push('-d', opts.dbname ?? 'postgres');
    this.child = spawn(pgProgram('psql', opts.binDir), args, { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, PGAPPNAME: 'keep pg backup' } });
    this.child.stdout.setEncoding('utf8');
    this.child.stderr.setEncoding('utf8');
    this.child.stdout.on('data', (s: string) => {
      this.buffer += s;
      this.deliver();
    });
    this.child.stderr.on('data', (s: string) => (this.stderr += s));
    this.child.stdin.on('error', () => undefined);
    const fail = (e: Error) => {
      this.exited ??= e;
      this.waiting?.reject(this.exited);
      this.waiting = undefined;
    };
    this.child.on('error', (e) => fail(new KeepError('UNAVAILABLE', `cannot run psql: ${e.message}`)));
    this.child.on('close', (code) => {
      const msg = this.stderr.trim().split('\n').filter(Boolean).pop() ?? `psql exited ${code}`;
      fail(new KeepError('UNAVAILABLE', `PostgreSQL: ${msg.replace(/^psql:(<stdin>:\d+: )?/, '').trim()}`));
    });
  }

  private deliver(): void {
    const w = this.waiting;
    if (!w) return;
    const end = this.buffer.indexOf(`${w.marker}\n`);
    if (end < 0) return;
    const text = this.buffer.slice(0, end);
    this.buffer = this.buffer.slice(end + w.marker.length + 1);
    this.waiting = undefined;
    w.resolve(
      text
        .split('\n')
        .filter((l) => l.length > 0)
        .map((l) => l.split(FIELD)),
    );
  }

  /** Run one statement; its rows (fields as text). Queries are run one at a time. */
  query(sql: string): Promise<string[][]> {
    if (this.exited) return Promise.reject(this.exited);
    if (this.waiting) return Promise.reject(new Error('psql session busy'));
    const marker = `--keep-${crypto.randomBytes(8).toString('hex')}--`;
    return new Promise((resolve, reject) => {
      this.waiting = { marker, resolve, reject };
      this.child.stdin.write(`${sql.trim().replace(/;$/, '')};\n\\echo ${marker}\n`);
    });
  }

  async value(sql: string): Promise<string> {
    const rows = await this.query(sql);
    if (rows.length !== 1 || rows[0].length !== 1) throw new KeepError('INTERNAL', `expected one value from: ${sql}`);
    return rows[0][0];
  }

  /** End the session (a backup still running in it is aborted by PostgreSQL). */
  async close(): Promise<void> {
    if (this.exited) return;
    const closed = new Promise<void>((r) => this.child.once('close', () => r()));
    this.child.stdin.end('\\q\n');
    const timer = setTimeout(() => this.child.kill('SIGTERM'), 5000);
    await closed;
    clearTimeout(timer);
  }
}

/** Hex-encoded text (psql's output is line-based) decoded. */
export function unhex(hex: string | undefined): string {
  return hex ? Buffer.from(hex, 'hex').toString('utf8') : '';
}
