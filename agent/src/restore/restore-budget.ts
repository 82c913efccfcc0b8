/**
 * How far a restore reads ahead of its writes (restorer.ts): the bounds on
 * memory and on what is asked of the repository at once.
 */

/** Files up to this size in one chunk are fetched whole and written by a worker in one go. */
export const SMALL_FILE = 1024 * 1024;
/**
 * Small files requested and not yet written: bytes and count. The walker
 * waits beyond either, so memory does not grow with the tree, while enough
 * is asked at once for keepd to answer in long, coalesced pack reads.
 */
export const SMALL_BYTES_AHEAD = 4 * 1024 * 1024;
export const SMALL_FILES_AHEAD = 2048;
/** Large files written at once (each on one worker, its chunks in order). */
export const LARGE_FILES = 2;
/**
 * Large files found by the walker and waiting for a slot: the walker goes on
 * to the small files after them meanwhile, so both kinds share the network.
 */
export const LARGE_WAITING = 64;
/**
 * Chunks of one large file between request and write: as many as fit in
 * LARGE_AHEAD_BYTES at the file's average chunk size, at least 2, at most
 * CHUNK_WINDOW. A count alone let a file of max-size chunks (4 MiB, or more
 * with a repository's own chunker sizes) hold 8 of them per file.
 */
const CHUNK_WINDOW = 8;
export const LARGE_AHEAD_BYTES = 4 * 1024 * 1024;

export function chunkWindow(size: number, chunks: number): number {
  const avg = Math.max(1, Math.ceil(size / Math.max(1, chunks)));
  return Math.max(2, Math.min(CHUNK_WINDOW, Math.floor(LARGE_AHEAD_BYTES / avg)));
}
