import crypto from 'node:crypto';
import { KeepError } from '../errors.js';

/**
 * The passphrase KDF of key files (keyfile.ts): scrypt with the parameters a
 * key file records. One derivation for every caller — unlock, and the agent's
 * head start before its program loads (agent/src/startup/early-kek.ts, which
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

/**
 * Bounds on a key file's scrypt parameters. Key files are public and anyone
 * who may add one chooses them, so every reader checks them before deriving:
 * one key file with N=2^20, p=2 made each command of every agent take 15 s and
 * 1.1 GB. The defaults (N=2^15, r=8, p=3: 96 MiB of work) and every
 * `keep init --kdf-cost` (10 to 18, r=8, p=1) lie inside.
 */
export const KDF_MIN_N = 2 ** 10;
export const KDF_MAX_N = 2 ** 18;
export const KDF_MAX_R = 16;
export const KDF_MAX_P = 8;
/** 128·N·r·p bytes: scrypt's memory per lane times its lanes, so a bound on both its memory and its time. */
export const KDF_MAX_WORK_BYTES = 256 * 1024 * 1024;
/** Salt length in bytes (key files are written with 16). */
export const KDF_SALT_MIN = 16;
export const KDF_SALT_MAX = 64;

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** The bytes of a canonical base64 string, or undefined (Buffer.from would skip junk silently). */
export function strictBase64(v: unknown): Buffer | undefined {
  if (typeof v !== 'string' || v.length % 4 !== 0 || !BASE64.test(v)) return undefined;
  const b = Buffer.from(v, 'base64');
  return b.toString('base64') === v ? b : undefined;
}

/** Why these KDF parameters are unusable (shape or bounds), or undefined when they are fine. */
export function kdfProblem(kdf: unknown): string | undefined {
  if (typeof kdf !== 'object' || kdf === null) return 'it has no kdf parameters';
  const k = kdf as Record<string, unknown>;
  if (k.name !== 'scrypt') return `unknown KDF ${String(k.name).slice(0, 40)}`;
  const { N, r, p } = k;
  if (![N, r, p].every((v) => Number.isSafeInteger(v) && (v as number) > 0)) return 'scrypt N, r and p must be positive integers';
  const [n, rr, pp] = [N, r, p] as number[];
  if ((n & (n - 1)) !== 0 || n < KDF_MIN_N || n > KDF_MAX_N) return `scrypt N=${n} is outside the bounds (a power of 2 from 2^10 to 2^18)`;
  if (rr > KDF_MAX_R) return `scrypt r=${rr} is above the bound ${KDF_MAX_R}`;
  if (pp > KDF_MAX_P) return `scrypt p=${pp} is above the bound ${KDF_MAX_P}`;
  if (128 * n * rr * pp > KDF_MAX_WORK_BYTES) return `scrypt N·r·p=${n * rr * pp} is above the bound (128·N·r·p at most ${KDF_MAX_WORK_BYTES >> 20} MiB)`;
  const salt = strictBase64(k.salt);
  if (!salt || salt.length < KDF_SALT_MIN || salt.length > KDF_SALT_MAX) return `the scrypt salt must be base64 of ${KDF_SALT_MIN} to ${KDF_SALT_MAX} bytes`;
  return undefined;
}

function scryptArgs(password: string, kdf: KdfParams): [string, Buffer, number, crypto.ScryptOptions] {
  // Never derive with parameters beyond the bounds, whoever asks (unlock, the early head start).
  const problem = kdfProblem(kdf);
  if (problem) throw new KeepError('CORRUPT', `key file KDF parameters are unusable: ${problem}`);
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
