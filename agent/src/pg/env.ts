import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { KeepError } from '@keep/core';

/*
 * PostgreSQL runs archive_command and restore_command through /bin/sh as its
 * own user, with its own environment, so those commands either carry the
 * variables inline (`KEEP_REPO=… KEEP_PASSWORD_FILE=… keep pg wal-push %p`)
 * or name a file with the global `--env-file FILE` (terminal/env-file.ts). Secrets
 * stay in files (KEEP_PASSWORD_FILE, KEEP_TOKEN_FILE) or behind a
 * KEEP_PASSWORD_COMMAND: never in postgresql.auto.conf, which is itself backed up.
 */

/** --source, else KEEP_PG_SOURCE, else pg-<hostname>. */
export function pgSource(flag: string | undefined, env: NodeJS.ProcessEnv): string {
  return flag ?? env.KEEP_PG_SOURCE ?? `pg-${os.hostname()}`;
}

/** Quote one word for /bin/sh. */
export function shQuote(s: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** A string value for postgresql.conf: single quotes, embedded quotes doubled. */
export function confQuote(s: string): string {
  return `'${s.replace(/'/g, "''")}'`;
}

/** How this keep is started again by PostgreSQL: node and this script, absolute. */
export function keepInvocation(env: NodeJS.ProcessEnv): string[] {
  if (env.KEEP_PG_KEEP_BIN) return [env.KEEP_PG_KEEP_BIN];
  const script = process.argv[1] ? fs.realpathSync(process.argv[1]) : '';
  return [process.execPath, script];
}

const FILE_VARS = ['KEEP_REPO', 'KEEP_PASSWORD_FILE', 'KEEP_PASSWORD_COMMAND', 'KEEP_TOKEN_FILE', 'KEEP_CA', 'KEEP_CLOCK_OFFSET_MS'];

/**
 * A `keep pg SUBCOMMAND ARGS` command line for archive_command or
 * restore_command. With an env file it is named; otherwise the repository
 * variables go inline, and secrets must come from files (a passphrase or token
 * written into postgresql.conf would end up in every base backup).
 * `%` in literal words is doubled (PostgreSQL expands %f, %p, %r, %%).
 */
export function pgCommandLine(sub: string, args: string[], env: NodeJS.ProcessEnv, envFile: string | undefined, placeholders: string[]): string {
  const words: string[] = [];
  if (!envFile) {
    if (env.KEEP_PASSWORD !== undefined) throw new KeepError('INVALID_ARGUMENT', 'PostgreSQL runs keep itself: give the passphrase as --password-file or KEEP_PASSWORD_FILE (readable by the postgres user), or use --env-file');
    if (env.KEEP_TOKEN) throw new KeepError('INVALID_ARGUMENT', 'PostgreSQL runs keep itself: give the token as --token-file or KEEP_TOKEN_FILE (readable by the postgres user), or use --env-file');
    if (!env.KEEP_PASSWORD_FILE && !env.KEEP_PASSWORD_COMMAND) throw new KeepError('INVALID_ARGUMENT', 'no passphrase: give --password-file (readable by the postgres user) or --password-command, or use --env-file');
    for (const k of FILE_VARS) {
      const v = env[k];
      if (v === undefined || v === '') continue;
      const abs = k.endsWith('_FILE') || k === 'KEEP_CA' || (k === 'KEEP_REPO' && !/^grpcs?:\/\//.test(v) && !v.includes(',')) ? path.resolve(v) : v;
      words.push(`${k}=${shQuote(abs)}`);
    }
  }
  words.push(...keepInvocation(env).map(shQuote), 'pg', sub);
  if (envFile) words.push('--env-file', shQuote(path.resolve(envFile)));
  words.push(...args.map(shQuote));
  return words.map((w) => w.replace(/%/g, '%%')).join(' ') + (placeholders.length ? ' ' + placeholders.join(' ') : '');
}

/**
 * A PostgreSQL client program: --pg-bin DIR, else PATH, else the newest
 * /usr/lib/postgresql/N/bin (Debian and Ubuntu install there).
 */
export function pgProgram(name: string, binDir: string | undefined): string {
  if (binDir) return path.join(binDir, name);
  for (const dir of (process.env.PATH ?? '').split(':')) {
    if (dir && fs.existsSync(path.join(dir, name))) return path.join(dir, name);
  }
  try {
    const versions = fs
      .readdirSync('/usr/lib/postgresql')
      .filter((v) => /^\d+$/.test(v))
      .sort((a, b) => Number(b) - Number(a));
    for (const v of versions) {
      const p = path.join('/usr/lib/postgresql', v, 'bin', name);
      if (fs.existsSync(p)) return p;
    }
  } catch {
    // no Debian layout
  }
  throw new KeepError('NOT_FOUND', `${name} not found: put PostgreSQL's bin directory in PATH or give --pg-bin DIR`);
}
