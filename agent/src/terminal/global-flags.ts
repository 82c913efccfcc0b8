import path from 'node:path';
import { KeepError } from '@keep/core';
import { warnIfWorldReadable } from './secret-file.js';
import { fillEnv, readEnvFile } from './env-file.js';

/**
 * Flags every command takes, before or after the command name (restic
 * accepts both). Each stands for a variable and beats it: flag > environment
 * (with --env-file's lines) > a prompt on a terminal.
 */
export const GLOBAL_FLAGS_USAGE = `global flags (before or after the command; a flag beats its variable, a variable beats --env-file):
  -r, --repo LOCATION          repository: a directory, grpc[s]://host:port or a comma list of keepds (KEEP_REPO)
  --password-file FILE         the passphrase is FILE's text (KEEP_PASSWORD_FILE; KEEP_PASSWORD holds it directly)
  --password-command CMD       the passphrase is the first line CMD prints, run by /bin/sh (KEEP_PASSWORD_COMMAND)
                               none of these and stdin a terminal: keep asks, without echo
  --token-file FILE            the keepd token (KEEP_TOKEN_FILE; KEEP_TOKEN holds it directly)
  --env-file FILE              KEY=VALUE lines (# comments, quotes); variables already set win, as with dotenv
  --insecure                   plaintext grpc:// to a host that is not loopback (KEEP_INSECURE=1)
  --json                       one JSON document on stdout (backup, restore: restic's JSON lines)`;

export interface GlobalFlags {
  repo?: string;
  passwordFile?: string;
  passwordCommand?: string;
  tokenFile?: string;
  envFile?: string;
  insecure?: boolean;
}

const VALUED: Record<string, keyof GlobalFlags> = {
  '-r': 'repo',
  '--repo': 'repo',
  '--password-file': 'passwordFile',
  '--password-command': 'passwordCommand',
  '--token-file': 'tokenFile',
  '--env-file': 'envFile',
};

/** The global flags anywhere on the line (up to a `--`), and the line without them. */
export function takeGlobalFlags(argv: string[]): { argv: string[]; flags: GlobalFlags } {
  const flags: GlobalFlags = {};
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') {
      rest.push(...argv.slice(i));
      break;
    }
    if (a === '--insecure') {
      flags.insecure = true;
      continue;
    }
    const eq = a.indexOf('=');
    const name = a.startsWith('--') && eq > 0 ? a.slice(0, eq) : a.startsWith('-r') && a.length > 2 && !a.startsWith('--') ? '-r' : a;
    const key = VALUED[name];
    if (!key) {
      rest.push(a);
      continue;
    }
    let value: string | undefined;
    if (name !== a) value = name === '-r' ? a.slice(2) : a.slice(eq + 1);
    else value = argv[++i];
    if (value === undefined || value === '') throw new KeepError('INVALID_ARGUMENT', `${name} needs a value`);
    (flags[key] as string) = value;
  }
  return { argv: rest, flags };
}

let envFileUsed: string | undefined;

/** The --env-file this command read (absolute), for command lines that run keep again (keep pg config). */
export function envFileInUse(): string | undefined {
  return envFileUsed;
}

/** Make the flags what the commands read: their variables in `env`, competing ones removed. */
export function applyGlobalFlags(flags: GlobalFlags, env: NodeJS.ProcessEnv = process.env): void {
  if (flags.passwordFile && flags.passwordCommand) throw new KeepError('INVALID_ARGUMENT', '--password-file and --password-command are mutually exclusive');
  if (flags.envFile) {
    const vars = readEnvFile(flags.envFile);
    if (Object.keys(vars).some((k) => k === 'KEEP_PASSWORD' || k === 'KEEP_TOKEN' || k === 'KEEP_NEW_PASSWORD')) warnIfWorldReadable(flags.envFile, '--env-file');
    fillEnv(vars, env);
    envFileUsed = path.resolve(flags.envFile);
  }
  if (flags.repo) env.KEEP_REPO = flags.repo;
  const password = flags.passwordFile ? ['KEEP_PASSWORD_FILE', flags.passwordFile] : flags.passwordCommand ? ['KEEP_PASSWORD_COMMAND', flags.passwordCommand] : undefined;
  if (password) {
    for (const k of ['KEEP_PASSWORD', 'KEEP_PASSWORD_FILE', 'KEEP_PASSWORD_COMMAND']) delete env[k];
    env[password[0]] = password[1];
  }
  if (flags.tokenFile) {
    delete env.KEEP_TOKEN;
    env.KEEP_TOKEN_FILE = flags.tokenFile;
  }
  if (flags.insecure) env.KEEP_INSECURE = '1';
}
