import crypto from 'node:crypto';
import { KeepError } from '../errors.js';
import { deriveKekSync as kek, KdfParams } from './kdf.js';

/**
 * A key file: the repository master key wrapped by one passphrase.
 * Several key files may wrap the same master key (`keep key add`).
 *
 * The KDF is scrypt with its parameters recorded per file, so they can be
 * raised later without breaking old files. The wrapping cipher is AES-256-GCM
 * with the key file's id, creation time and KDF parameters as AAD, so none of
 * them can be edited without the unwrap failing.
 */
export interface KeyFile {
  version: 1;
  id: string;
  created: string;
  host: string;
  username: string;
  kdf: KdfParams;
  nonce: string;
  /** AES-256-GCM(master key) || tag, base64. */
  data: string;
}

export const MASTER_KEY_SIZE = 32;

/**
 * One of OWASP's equivalent scrypt minimums (N=2^15, r=8, p=3): the same work
 * as N=2^17/p=1 (~0.26 s here) in a quarter of the memory (32 MiB, like
 * restic's calibrated keys), which agents on busy database hosts feel. Key
 * files created before keep their recorded parameters. Tests may lower N.
 */
export const DEFAULT_SCRYPT = { N: 1 << 15, r: 8, p: 3 };

export function newMasterKey(): Buffer {
  return crypto.randomBytes(MASTER_KEY_SIZE);
}

function aad(f: Pick<KeyFile, 'version' | 'id' | 'created' | 'kdf'>): Buffer {
  return Buffer.from(JSON.stringify([f.version, f.id, f.created, f.kdf]));
}

export function wrapMasterKey(
  master: Buffer,
  password: string,
  meta: { host: string; username: string; created: Date; scrypt?: { N: number; r: number; p: number } },
): KeyFile {
  if (password.length === 0) throw new KeepError('INVALID_ARGUMENT', 'an empty passphrase is not allowed');
  const s = meta.scrypt ?? DEFAULT_SCRYPT;
  const file: KeyFile = {
    version: 1,
    id: crypto.randomBytes(8).toString('hex'),
    created: meta.created.toISOString(),
    host: meta.host,
    username: meta.username,
    kdf: { name: 'scrypt', N: s.N, r: s.r, p: s.p, salt: crypto.randomBytes(16).toString('base64') },
    nonce: '',
    data: '',
  };
  const nonce = crypto.randomBytes(12);
  const c = crypto.createCipheriv('aes-256-gcm', kek(password, file.kdf), nonce);
  c.setAAD(aad(file));
  file.nonce = nonce.toString('base64');
  file.data = Buffer.concat([c.update(master), c.final(), c.getAuthTag()]).toString('base64');
  return file;
}

/** Returns the master key, or null when the passphrase does not open this file. */
export function unwrapMasterKey(file: KeyFile, password: string): Buffer | null {
  return unwrapWithKek(file, () => kek(password, file.kdf));
}

/** unwrapMasterKey with the key-encryption key already derived (deriveKek). */
export function unwrapWithKek(file: KeyFile, key: Buffer | (() => Buffer)): Buffer | null {
  const data = Buffer.from(file.data, 'base64');
  if (data.length !== MASTER_KEY_SIZE + 16) throw new KeepError('CORRUPT', `key file ${file.id} is damaged (wrong length)`);
  let d: crypto.DecipherGCM;
  try {
    d = crypto.createDecipheriv('aes-256-gcm', typeof key === 'function' ? key() : key, Buffer.from(file.nonce, 'base64'));
  } catch (e) {
    // KDF parameters out of bounds or scrypt refuses, or an unusable nonce, mean a damaged file, not a wrong passphrase.
    if (e instanceof KeepError && e.code !== 'CORRUPT') throw e;
    throw new KeepError('CORRUPT', `key file ${file.id} is damaged (${(e as Error).message})`);
  }
  d.setAAD(aad(file));
  d.setAuthTag(data.subarray(MASTER_KEY_SIZE));
  try {
    return Buffer.concat([d.update(data.subarray(0, MASTER_KEY_SIZE)), d.final()]);
  } catch {
    return null;
  }
}

/** Try every key file (restic's behaviour); a clear error when none opens. */
export function openMasterKey(files: KeyFile[], password: string): { master: Buffer; keyId: string } {
  if (files.length === 0) throw new KeepError('NOT_A_REPOSITORY', 'the repository has no key files; run `keep init` first');
  for (const f of files) {
    const master = unwrapMasterKey(f, password);
    if (master) return { master, keyId: f.id };
  }
  throw WRONG_PASSWORD();
}

/**
 * openMasterKey off the main thread: each key file's KEK comes from `kekFor`
 * (deriveKek, or a derivation started earlier for the same salt and
 * parameters), tried in order. A key file that turns out damaged is skipped
 * (`onSkip` says why): one bad file must not lock the others' holders out.
 */
export async function openMasterKeyAsync(files: KeyFile[], kekFor: (f: KeyFile) => Promise<Buffer>, onSkip: (problem: string) => void = () => undefined): Promise<{ master: Buffer; keyId: string }> {
  if (files.length === 0) throw new KeepError('NOT_A_REPOSITORY', 'the repository has no key files; run `keep init` first');
  for (const f of files) {
    let master: Buffer | null;
    try {
      master = unwrapWithKek(f, await kekFor(f));
    } catch (e) {
      if (!(e instanceof KeepError && e.code === 'CORRUPT')) throw e;
      onSkip(e.message.includes(f.id) ? e.message : `key file ${f.id}: ${e.message}`);
      continue;
    }
    if (master) return { master, keyId: f.id };
  }
  throw WRONG_PASSWORD();
}

const WRONG_PASSWORD = () => new KeepError('WRONG_PASSWORD', 'wrong passphrase: no key file of this repository opens with it');
