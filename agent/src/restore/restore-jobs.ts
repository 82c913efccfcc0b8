/**
 * Messages between the restore pool (worker-pool.ts) and its workers
 * (restore-worker.ts). Byte fields are views into one ArrayBuffer per message,
 * transferred, not cloned; stored bytes that own their ArrayBuffer travel in
 * it (transferred too) instead of being copied into the message's.
 */

/** A file of at most one chunk: fetched whole, decrypted, written and closed by one worker. */
export interface SmallFileJob {
  path: Uint8Array;
  /** absent for an empty file */
  id?: Uint8Array;
  stored?: Uint8Array;
  size: number;
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
}

export type RestoreJob =
  | { op: 'files'; seq: number; files: SmallFileJob[]; chown: boolean }
  /** start a large file: its chunks follow in order on the same worker */
  | { op: 'begin'; seq: number; file: number; path: Uint8Array }
  | { op: 'chunk'; seq: number; file: number; id: Uint8Array; stored: Uint8Array }
  /** check the size, apply metadata, close; with `abort`, only close */
  | { op: 'end'; seq: number; file: number; size: number; mode: number; uid: number; gid: number; mtime: number; chown: boolean; abort?: boolean };

/** What the pool posts: the master key once unlocked (workers start, and load their code, before it is known; it comes before any job), then jobs. */
/** `maxChunk`: the repository's max chunk size, the most a data blob may decompress to (a larger one is a bomb, refused). */
/** `umask`: the process's (target-fs.ts createMode), undefined when unknown. */
export type RestoreMessage = { op: 'unlock'; master: Uint8Array; maxChunk: number; umask?: number } | RestoreJob;

export type RestoreResult =
  | { seq: number; ok: true; bytes: number }
  /** `index`: the file of a 'files' batch that failed (those before it are written) */
  | { seq: number; ok: false; code: string; message: string; errno?: string; index?: number };
