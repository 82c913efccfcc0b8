import { KeepError } from '../errors.js';
import { kdfProblem, strictBase64 } from './kdf.js';
import { MASTER_KEY_SIZE, type KeyFile } from './keyfile.js';

/**
 * Validation of key files: whoever may add a key file (an agent's `keep
 * init`, an admin, a file written into keys/) must not be able to lock every
 * other reader out, so each reader checks each file's structure, field
 * types, lengths and KDF bounds (kdf.ts) before using it, and keepd refuses
 * a bad one on AddKey.
 */

/** Larger than any key file keep writes (about 400 bytes) by far. */
export const MAX_KEY_FILE_BYTES = 16 * 1024;
const ID = /^[0-9a-f]{16}$/;
const NONCE_SIZE = 12;
const TAG_SIZE = 16;
/** host, username and created are free text shown by `keep key list`. */
const MAX_TEXT = 256;

/** Why `x` is not a usable key file, or undefined when it is one. */
export function keyFileProblem(x: unknown): string | undefined {
  if (typeof x !== 'object' || x === null || Array.isArray(x)) return 'not a JSON object';
  const f = x as Record<string, unknown>;
  if (f.version !== 1) return `version ${String(f.version).slice(0, 20)} is not 1`;
  if (typeof f.id !== 'string' || !ID.test(f.id)) return 'its id is not 16 hex digits';
  for (const k of ['created', 'host', 'username'] as const) if (typeof f[k] !== 'string' || (f[k] as string).length > MAX_TEXT) return `${k} is not a string of at most ${MAX_TEXT} characters`;
  if (Number.isNaN(Date.parse(f.created as string))) return 'created is not a time';
  const kdf = kdfProblem(f.kdf);
  if (kdf) return kdf;
  if (strictBase64(f.nonce)?.length !== NONCE_SIZE) return `the nonce is not base64 of ${NONCE_SIZE} bytes`;
  if (strictBase64(f.data)?.length !== MASTER_KEY_SIZE + TAG_SIZE) return `the wrapped key is not base64 of ${MASTER_KEY_SIZE + TAG_SIZE} bytes (wrong length)`;
  return undefined;
}

/** A key file from JSON text, checked; CORRUPT naming the file (`label`: its id when the text has none) and the problem. */
export function parseKeyFile(text: string, label?: string): KeyFile {
  let x: unknown;
  if (text.length > MAX_KEY_FILE_BYTES) throw damaged(label, `larger than ${MAX_KEY_FILE_BYTES} bytes`);
  try {
    x = JSON.parse(text);
  } catch {
    throw damaged(label, 'not JSON');
  }
  const problem = keyFileProblem(x);
  const id = (x as { id?: unknown } | null)?.id;
  if (problem) throw damaged(typeof id === 'string' && ID.test(id) ? id : label, problem);
  return x as KeyFile;
}

function damaged(label: string | undefined, problem: string): KeepError {
  return new KeepError('CORRUPT', `key file ${label ?? '(no id)'} is damaged or out of bounds: ${problem}`);
}
