import { Chunking, chunkingFor, deriveKek, deriveKeys, insecureFromEnv, KeepError, openMasterKeyAsync, RepoConfig, RepoKeys } from '@keep/core';
import type { RepoConnection } from './connection.js';
import { readPassword, readToken } from './credentials.js';
import { rememberKdfParams, takeEarlyKek } from '../startup/early-kek.js';
import { LocalConnection } from './local.js';
import { RemoteConnection } from './remote.js';
import { mark } from '../startup/timing.js';

export { readPassword, readToken } from './credentials.js';

/** A repository whose master key this process holds. */
export interface Unlocked {
  conn: RepoConnection;
  config: RepoConfig;
  master: Buffer;
  keys: RepoKeys;
  keyId: string;
  /** the repository's chunker as this key holder runs it (keyed repositories: with their gear table) */
  chunking: Chunking;
}

export function repoLocation(env: NodeJS.ProcessEnv = process.env): string {
  const loc = env.KEEP_REPO;
  if (!loc) throw new KeepError('INVALID_ARGUMENT', 'no repository: give -r/--repo or set KEEP_REPO (a local directory, or grpc://host:port for a keepd)');
  return loc;
}

export function isRemote(location: string): boolean {
  return /^grpcs?:\/\//.test(location);
}

/**
 * A local directory opens the embedded engine; grpc://host:port (plaintext h2)
 * or grpcs://host:port (TLS; KEEP_CA names a CA file to trust, else Node's
 * bundled roots) reaches a keepd with the token from KEEP_TOKEN or KEEP_TOKEN_FILE (--token-file).
 */
export async function connect(location: string, env: NodeJS.ProcessEnv = process.env, intent: Intent = {}): Promise<RepoConnection> {
  if (location.includes(',')) return failover(location.split(',').map((l) => l.trim()).filter(Boolean), env, intent);
  if (isRemote(location)) return new RemoteConnection(location, { token: readToken(env), caFile: env.KEEP_CA || undefined, insecure: insecureFromEnv(env) });
  return LocalConnection.open(location);
}

/** What a command will do with the repository: `write` (backup, init, key changes) needs a keepd that takes writes. */
export interface Intent {
  write?: boolean;
}

/**
 * KEEP_REPO=grpc://primary:7420,grpc://replica:7420: the first keepd that
 * answers serves this command (a restore from a replica while the primary is
 * down; backups to a promoted replica). A command that writes skips a
 * read-only replica (one not promoted), so a backup never lands on a replica
 * silently. The same credentials go to each.
 */
async function failover(locations: string[], env: NodeJS.ProcessEnv, intent: Intent): Promise<RepoConnection> {
  const errors: string[] = [];
  const readOnly: string[] = [];
  for (const loc of locations) {
    const conn = await connect(loc, env);
    try {
      await conn.config();
    } catch (e) {
      await conn.close();
      if (!(e instanceof KeepError && e.code === 'UNAVAILABLE')) throw e;
      errors.push((e as Error).message);
      continue;
    }
    if (intent.write && (await conn.readOnly?.())) {
      readOnly.push(loc);
      await conn.close();
      continue;
    }
    return conn;
  }
  if (readOnly.length) {
    throw new KeepError('UNAVAILABLE', `no writable repository in KEEP_REPO: ${readOnly.join(', ')} is a read-only replica (promote it with \`keepd promote --data DIR\` to back up to it)${errors.length ? `; ${errors.join('; ')}` : ''}`);
  }
  throw new KeepError('UNAVAILABLE', `no repository in KEEP_REPO answered: ${errors.join('; ')}`);
}

/**
 * Open the master key. scrypt runs on the thread pool (the caller may do
 * other work meanwhile), or was started at process start (startup/early-kek.ts);
 * the key files' public KDF parameters are remembered for that head start
 * when `remember` names the repository location.
 */
export async function unlock(conn: RepoConnection, password: string, remember?: { location: string; env: NodeJS.ProcessEnv }): Promise<Unlocked> {
  const [config, files, damaged] = await Promise.all([conn.config(), conn.keyFiles(), conn.damagedKeyFiles()]);
  mark('config and key files');
  // A damaged or out-of-bounds key file is skipped, never derived with: it must not lock the other keys' holders out.
  const skip = (problem: string) => process.stderr.write(`keep: warning: skipping ${problem}\n`);
  damaged.forEach(skip);
  if (files.length === 0 && damaged.length > 0) throw new KeepError('CORRUPT', `no usable key file: ${damaged[0]}`);
  const { master, keyId } = await openMasterKeyAsync(files, (f) => takeEarlyKek(f.kdf, password) ?? deriveKek(password, f.kdf), skip);
  mark('master key open');
  if (remember) rememberKdfParams(remember.location, files.map((f) => f.kdf), remember.env);
  const keys = deriveKeys(master);
  return { conn, config, master, keys, keyId, chunking: chunkingFor(config.chunker, keys) };
}

export async function openRepository(env: NodeJS.ProcessEnv = process.env, intent: Intent = {}): Promise<Unlocked> {
  return (await openRepositoryWhile(async () => undefined, env, intent)).repo;
}

/** openRepository, running `meanwhile` (keyless calls: listing snapshots) on the connection while scrypt runs. */
export async function openRepositoryWhile<T>(meanwhile: (conn: RepoConnection) => Promise<T>, env: NodeJS.ProcessEnv = process.env, intent: Intent = {}): Promise<{ repo: Unlocked; meanwhile: T }> {
  const location = repoLocation(env);
  const conn = await connect(location, env, intent);
  mark('connection made');
  try {
    const side = meanwhile(conn);
    side.then(() => mark('meanwhile done'), () => undefined); // a failure is awaited below, after the unlock's own errors
    // After connecting: a location that is no repository fails before anyone is asked for a passphrase.
    const repo = await unlock(conn, await readPassword(env), { location, env });
    return { repo, meanwhile: await side };
  } catch (e) {
    await conn.close();
    throw e;
  }
}
