import { Compression } from '../compress.js';

/** Messages between the seal pool and its workers. */
export type SealJob =
  | { op: 'seal'; seq: number; salt: Uint8Array; id: Uint8Array; plaintext: Uint8Array; compression: Compression }
  | { op: 'open'; seq: number; id: Uint8Array; stored: Uint8Array };

export type SealResult = { seq: number; ok: true; bytes: Uint8Array } | { seq: number; ok: false; code: string; message: string };
