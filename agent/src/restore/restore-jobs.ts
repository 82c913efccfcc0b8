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
  /** created with its owner already (the restorer knows): no chown */
  owned?: boolean;
}

/**
 * A batch of small files as the message carries it: numbers in one
 * Float64Array (FILE_FIELDS per file), paths and ids in one byte array, the
 * stored blobs beside them (null for an empty file). A few objects to clone
 * per message, not eight fields and three views per file.
 */
export interface SmallFileBatch {
  /** per file: size, mode, uid, gid, mtime, path offset and length in `bytes`, id offset (-1: none), owned (1) */
  meta: Float64Array;
  bytes: Uint8Array;
  stored: (Uint8Array | null)[];
}

const FILE_FIELDS = 9;
const ID_BYTES = 32;

/** Lay out `files` (their stored bytes in `stored[i]`, kept as they are) for a message. */
export function packBatch(files: { path: Uint8Array; id?: Uint8Array; size: number; mode: number; uid: number; gid: number; mtime: number; owned?: boolean }[], stored: (Uint8Array | null)[]): SmallFileBatch {
  let n = 0;
  for (const f of files) n += f.path.length + (f.id ? ID_BYTES : 0);
  const bytes = new Uint8Array(n);
  const meta = new Float64Array(files.length * FILE_FIELDS);
  let o = 0;
  files.forEach((f, i) => {
    const m = i * FILE_FIELDS;
    meta[m] = f.size;
    meta[m + 1] = f.mode;
    meta[m + 2] = f.uid;
    meta[m + 3] = f.gid;
    meta[m + 4] = f.mtime;
    meta[m + 5] = o;
    meta[m + 6] = f.path.length;
    bytes.set(f.path, o);
    o += f.path.length;
    meta[m + 7] = f.id ? o : -1;
    if (f.id) bytes.set(f.id.subarray(0, ID_BYTES), o), (o += ID_BYTES);
    meta[m + 8] = f.owned ? 1 : 0;
  });
  return { meta, bytes, stored };
}

/** The files of a batch (views into its buffers). */
export function unpackBatch(b: SmallFileBatch): SmallFileJob[] {
  const files: SmallFileJob[] = [];
  for (let i = 0, m = 0; m < b.meta.length; i++, m += FILE_FIELDS) {
    const at = b.meta[m + 5];
    const id = b.meta[m + 7];
    files.push({
      size: b.meta[m],
      mode: b.meta[m + 1],
      uid: b.meta[m + 2],
      gid: b.meta[m + 3],
      mtime: b.meta[m + 4],
      path: b.bytes.subarray(at, at + b.meta[m + 6]),
      id: id < 0 ? undefined : b.bytes.subarray(id, id + ID_BYTES),
      stored: b.stored[i] ?? undefined,
      owned: b.meta[m + 8] === 1,
    });
  }
  return files;
}

export type RestoreJob =
  | { op: 'files'; seq: number; batch: SmallFileBatch; chown: boolean }
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
