import fs from 'node:fs';
import { deriveKeys, KeepError, openMasterKey, RepoConfig, RepoKeys } from '@keep/core';
import type { RepoConnection } from './connection.js';
import { LocalConnection } from './local.js';
import { RemoteConnection } from './remote.js';

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

/**
 * A local directory opens the embedded engine; grpc://host:port (plaintext h2)
 * or grpcs://host:port (TLS; KEEP_CA names a CA file to trust, else Node's
 * bundled roots) reaches a keepd with the token from KEEP_TOKEN or KEEP_TOKEN_FILE.
 */
export async function connect(location: string, env: NodeJS.ProcessEnv = process.env): Promise<RepoConnection> {
  if (location.includes(',')) return failover(location.split(',').map((l) => l.trim()).filter(Boolean), env);
  if (isRemote(location)) return new RemoteConnection(location, { token: readToken(env), caFile: env.KEEP_CA || undefined });
  return LocalConnection.open(location);
}

/**
 * KEEP_REPO=grpc://primary:7420,grpc://replica:7420: the first keepd that
 * answers serves this command (a restore from a replica while the primary is
 * down; backups to a promoted replica). The same credentials go to each.
 */
async function failover(locations: string[], env: NodeJS.ProcessEnv): Promise<RepoConnection> {
  const errors: string[] = [];
  for (const loc of locations) {
    const conn = await connect(loc, env);
    try {
      await conn.config();
      return conn;
    } catch (e) {
      await conn.close();
      if (!(e instanceof KeepError && e.code === 'UNAVAILABLE')) throw e;
      errors.push((e as Error).message);
    }
  }
  throw new KeepError('UNAVAILABLE', `no repository in KEEP_REPO answered: ${errors.join('; ')}`);
}

/** The keepd bearer token from KEEP_TOKEN or KEEP_TOKEN_FILE (trimmed); never printed. */
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
  return token;
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
  const conn = await connect(repoLocation(env), env);
  try {
    return await unlock(conn, readPassword(env));
  } catch (e) {
    await conn.close();
    throw e;
  }
}
