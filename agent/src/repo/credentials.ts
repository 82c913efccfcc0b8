import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { KeepError } from '@keep/core';
import { canPrompt, promptHidden } from '../terminal/prompt.js';
import { warnIfWorldReadable } from '../terminal/secret-file.js';

/**
 * Where passphrases and keepd tokens come from. The global flags
 * (terminal/global-flags.ts) arrive here as the variables they stand for, so the
 * order is: --password-file / --password-command (they unset the others),
 * then KEEP_PASSWORD, KEEP_PASSWORD_FILE, KEEP_PASSWORD_COMMAND, then a
 * prompt when stdin is a terminal. A secret never goes into an error message,
 * a log line or a child's argv.
 */

/** What a passphrase is for: the prompt's words and whether a typed one is asked twice. */
export interface PasswordPurpose {
  /** the prompt, e.g. "enter passphrase for repository: " */
  prompt?: string;
  /** a new passphrase (init, key add/passwd): typed ones are asked twice and compared */
  confirm?: boolean;
}

/**
 * The passphrase in variable NAME (KEEP_PASSWORD, or KEEP_NEW_PASSWORD for
 * `key add`/`passwd`), its _FILE (the file's text less one final newline) or
 * its _COMMAND (the first line its stdout prints), else asked for.
 */
export async function readPassword(env: NodeJS.ProcessEnv = process.env, name = 'KEEP_PASSWORD', purpose: PasswordPurpose = {}): Promise<string> {
  if (env[name] !== undefined) return env[name]!;
  const file = env[`${name}_FILE`];
  const command = env[`${name}_COMMAND`];
  if (file && command) throw new KeepError('INVALID_ARGUMENT', `${name}_FILE and ${name}_COMMAND are both set (--password-file and --password-command): give one`);
  if (file) return readPasswordFile(file, `${name}_FILE`);
  if (command) return runPasswordCommand(command, env);
  if (canPrompt()) return promptPassword(purpose);
  const flags = name === 'KEEP_PASSWORD' ? '--password-file or --password-command, ' : name === 'KEEP_NEW_PASSWORD' ? '--new-password-file, ' : '';
  throw new KeepError('INVALID_ARGUMENT', `no passphrase: give ${flags}set ${name}, ${name}_FILE or ${name}_COMMAND, or run on a terminal to be asked`);
}

function readPasswordFile(file: string, what: string): string {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new KeepError('INVALID_ARGUMENT', `cannot read ${what} ${file}: ${(e as Error).message}`);
  }
  warnIfWorldReadable(file, what);
  return text.replace(/\r?\n$/, '');
}

/**
 * Run the password command through /bin/sh (so `pass show keep | head -1`
 * works), with stdin closed (a `backup --stdin` keeps its data) and stderr
 * passed through (its own prompts and errors). Its stdout is read, never
 * shown; a failure says how it ended, never what it printed or the command
 * line (which may carry a secret).
 */
export function runPasswordCommand(command: string, env: NodeJS.ProcessEnv): Promise<string> {
  const childEnv = { ...env };
  for (const k of ['KEEP_PASSWORD', 'KEEP_NEW_PASSWORD', 'KEEP_TOKEN']) delete childEnv[k];
  return new Promise((resolve, reject) => {
    const child = spawn('/bin/sh', ['-c', command], { stdio: ['ignore', 'pipe', 'inherit'], env: childEnv });
    const out: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.on('error', (e) => reject(new KeepError('UNAVAILABLE', `cannot run the password command (--password-command / KEEP_PASSWORD_COMMAND): ${e.message}`)));
    child.on('close', (code, signal) => {
      if (code !== 0) {
        const how = signal ? `was killed by ${signal}` : `exited with status ${code}`;
        reject(new KeepError('UNAVAILABLE', `the password command (--password-command / KEEP_PASSWORD_COMMAND) ${how}; no passphrase`));
        return;
      }
      const first = Buffer.concat(out).toString('utf8').split('\n')[0].replace(/\r$/, '');
      if (!first) reject(new KeepError('UNAVAILABLE', 'the password command (--password-command / KEEP_PASSWORD_COMMAND) printed no passphrase'));
      else resolve(first);
    });
  });
}

async function promptPassword(purpose: PasswordPurpose): Promise<string> {
  const first = await promptHidden(purpose.prompt ?? 'enter passphrase for repository: ');
  if (!first) throw new KeepError('INVALID_ARGUMENT', 'no passphrase entered');
  if (purpose.confirm && (await promptHidden('enter passphrase again: ')) !== first) throw new KeepError('UNAUTHENTICATED', 'the passphrases do not match; nothing changed');
  return first;
}

/** The keepd bearer token from KEEP_TOKEN or KEEP_TOKEN_FILE (--token-file; trimmed); never printed. */
export function readToken(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env.KEEP_TOKEN) return env.KEEP_TOKEN.trim();
  const file = env.KEEP_TOKEN_FILE;
  if (!file) return undefined;
  let token: string;
  try {
    token = fs.readFileSync(file, 'utf8').trim();
  } catch (e) {
    throw new KeepError('INVALID_ARGUMENT', `cannot read KEEP_TOKEN_FILE ${file}: ${(e as Error).message}`);
  }
  if (!token) throw new KeepError('INVALID_ARGUMENT', `KEEP_TOKEN_FILE ${file} is empty`);
  warnIfWorldReadable(file, 'KEEP_TOKEN_FILE');
  return token;
}
