import crypto from 'node:crypto';
import { KeepError } from '../errors.js';

/**
 * The passphrase KDF of key files (keyfile.ts): scrypt with the parameters a
 * key file records. One derivation for every caller — unlock, and the agent's
 * head start before its program loads (agent/src/repo/early-kek.ts, which
 * imports this module alone as `@keep/core/kdf`: it must stay free of the
 * engine's heavier imports).
 */
export interface KdfParams {
  name: 'scrypt';
  N: number;
  r: number;
  p: number;
  salt: string;
}

function scryptArgs(password: string, kdf: KdfParams): [string, Buffer, number, crypto.ScryptOptions] {
  if (kdf.name !== 'scrypt') throw new KeepError('CORRUPT', `key file uses unknown KDF ${kdf.name}`);
  return [password.normalize('NFC'), Buffer.from(kdf.salt, 'base64'), 32, { N: kdf.N, r: kdf.r, p: kdf.p, maxmem: 256 * kdf.N * kdf.r + (1 << 20) }];
}

/** The key-encryption key, on this thread (wrapping a new key file). */
export function deriveKekSync(password: string, kdf: KdfParams): Buffer {
  return crypto.scryptSync(...scryptArgs(password, kdf));
}

/**
 * The key-encryption key of a key file, derived on libuv's thread pool so the
 * caller can go on (connect, list, walk) while scrypt runs. Parameters scrypt
 * refuses reject with CORRUPT, like unwrapMasterKey.
 */
export function deriveKek(password: string, kdf: KdfParams): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    try {
      crypto.scrypt(...scryptArgs(password, kdf), (err, key) => (err ? reject(new KeepError('CORRUPT', `key file KDF parameters are unusable (${err.message})`)) : resolve(key)));
    } catch (e) {
      reject(e instanceof KeepError ? e : new KeepError('CORRUPT', `key file KDF parameters are unusable (${(e as Error).message})`));
    }
  });
}
