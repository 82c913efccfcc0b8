import { Compression } from '../compress.js';

/** Messages between the seal pool and its workers. */
export type SealJob =
  | { op: 'seal'; seq: number; salt: Uint8Array; compression: Compression; items: { id: Uint8Array; plaintext: Uint8Array; inPlace: boolean }[] }
  | { op: 'open'; seq: number; id: Uint8Array; stored: Uint8Array };

/**
 * A job's outcome. Seal: one entry per item, `bytes` the sealed blob (a view
 * into a transferred ArrayBuffer of its own: the chunk's own buffer when
 * sealed in place) and `hash` its storage hash.
 * Open: one entry, the plaintext.
 */
export type SealResult = { seq: number; ok: true; out: { bytes: Uint8Array; hash?: Uint8Array }[] } | { seq: number; ok: false; code: string; message: string };
