import crypto from 'node:crypto';

/*
 * A small JSON value sealed for key holders only: AES-256-GCM under a
 * subkey of the master key (keys/subkeys.ts), a random 96-bit nonce per
 * value, the purpose's label as additional data (a value sealed for one
 * purpose does not open as another), base64 of nonce | ciphertext | tag.
 * keepd stores such values (a snapshot's paths, a run's error text) without
 * being able to read them.
 */

const NONCE = 12;
const TAG = 16;

export function sealJson(key: Buffer, label: string, value: unknown): string {
  const nonce = crypto.randomBytes(NONCE);
  const cipher = crypto.createCipheriv('aes-256-gcm', key, nonce);
  cipher.setAAD(Buffer.from(label));
  const sealed = Buffer.concat([nonce, cipher.update(Buffer.from(JSON.stringify(value))), cipher.final(), cipher.getAuthTag()]);
  return sealed.toString('base64');
}

/** The value, or undefined when it does not open (damaged, another key or label). */
export function openJson(key: Buffer, label: string, sealedBase64: string): unknown {
  const sealed = Buffer.from(sealedBase64, 'base64');
  if (sealed.length < NONCE + TAG) return undefined;
  try {
    const decipher = crypto.createDecipheriv('aes-256-gcm', key, sealed.subarray(0, NONCE));
    decipher.setAAD(Buffer.from(label));
    decipher.setAuthTag(sealed.subarray(sealed.length - TAG));
    return JSON.parse(Buffer.concat([decipher.update(sealed.subarray(NONCE, sealed.length - TAG)), decipher.final()]).toString());
  } catch {
    return undefined;
  }
}
