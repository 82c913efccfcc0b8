import { KeepError, RepoKeys } from '@keep/core';
import type { RepoConnection } from '../repo/connection.js';
import { connect, readPassword, unlock, Unlocked } from '../repo/open.js';
import type { AgentConfig } from './config.js';

/**
 * The repository's master key, unlocked once when the agent starts (one
 * scrypt) and held in memory only; each run opens its own connection with
 * it, so an embedded repository is not held open between runs.
 */
export class HeldKey {
  private constructor(
    readonly env: NodeJS.ProcessEnv,
    private readonly key: Omit<Unlocked, 'conn'>,
  ) {}

  get master(): Buffer {
    return this.key.master;
  }

  /** the subkeys derived from it (core keys/subkeys.ts) */
  get keys(): RepoKeys {
    return this.key.keys;
  }

  static async unlock(repository: AgentConfig['repository'], base: NodeJS.ProcessEnv = process.env): Promise<HeldKey> {
    const env = repositoryEnv(repository, base);
    const conn = await connect(repository.location, env, { write: true });
    try {
      const { conn: _, ...key } = await unlock(conn, await readPassword(env));
      return new HeldKey(env, key);
    } finally {
      await conn.close();
    }
  }

  /** A connection for one run, with the held key. */
  async open(): Promise<Unlocked> {
    const conn: RepoConnection = await connect(this.env.KEEP_REPO!, this.env, { write: true });
    const config = await conn.config();
    if (config.id !== this.key.config.id) {
      await conn.close();
      throw new KeepError('INVALID_ARGUMENT', `the repository at ${this.env.KEEP_REPO} is not the one the agent unlocked (id ${config.id}, not ${this.key.config.id})`);
    }
    return { ...this.key, conn };
  }
}

/** The config's repository section as the variables the CLI's credentials code reads (repo/credentials.ts). */
export function repositoryEnv(r: AgentConfig['repository'], base: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...base, KEEP_REPO: r.location };
  if (r.password_file || r.password_command) {
    for (const k of ['KEEP_PASSWORD', 'KEEP_PASSWORD_FILE', 'KEEP_PASSWORD_COMMAND']) delete env[k];
    if (r.password_file) env.KEEP_PASSWORD_FILE = r.password_file;
    else env.KEEP_PASSWORD_COMMAND = r.password_command;
  }
  if (r.token_file) {
    delete env.KEEP_TOKEN;
    env.KEEP_TOKEN_FILE = r.token_file;
  }
  if (r.ca_file) env.KEEP_CA = r.ca_file;
  return env;
}
