import fs from 'node:fs';
import { deriveKeys, KeepError, openMasterKey, RepoConfig, RepoKeys } from '@keep/core';
import type { RepoConnection } from './connection.js';
import { LocalConnection } from './local.js';

/** A repository whose master key this process holds. */
export interface Unlocked {
  conn: RepoConnection;
  config: RepoConfig;
  master: Buffer;
  keys: RepoKeys;
  keyId: string;
}

export function repoLocation(env: NodeJS.ProcessEnv = process.env): string {
  const loc = env.KEEP_REPO;
  if (!loc) throw new KeepError('INVALID_ARGUMENT', 'KEEP_REPO is not set (a local directory, or grpc://host:port for a keepd)');
  return loc;
}

export function isRemote(location: string): boolean {
  return /^grpcs?:\/\//.test(location);
}

export async function connect(location: string): Promise<RepoConnection> {
  if (isRemote(location)) throw new KeepError('UNAVAILABLE', `remote repositories (${location}) need keepd support, which this build lacks`);
  return LocalConnection.open(location);
}

/** The passphrase from KEEP_PASSWORD or KEEP_PASSWORD_FILE (restic's convention), never a flag. */
export function readPassword(env: NodeJS.ProcessEnv = process.env, name = 'KEEP_PASSWORD'): string {
  if (env[name] !== undefined) return env[name]!;
  const file = env[`${name}_FILE`];
  if (file) {
    try {
      return fs.readFileSync(file, 'utf8').replace(/\r?\n$/, '');
    } catch (e) {
      throw new KeepError('INVALID_ARGUMENT', `cannot read ${name}_FILE ${file}: ${(e as Error).message}`);
    }
  }
  throw new KeepError('INVALID_ARGUMENT', `no passphrase: set ${name} or ${name}_FILE`);
}

export async function unlock(conn: RepoConnection, password: string): Promise<Unlocked> {
  const [config, files] = await Promise.all([conn.config(), conn.keyFiles()]);
  const { master, keyId } = openMasterKey(files, password);
  return { conn, config, master, keys: deriveKeys(master), keyId };
}

export async function openRepository(env: NodeJS.ProcessEnv = process.env): Promise<Unlocked> {
  const conn = await connect(repoLocation(env));
  try {
    return await unlock(conn, readPassword(env));
  } catch (e) {
    await conn.close();
    throw e;
  }
}
