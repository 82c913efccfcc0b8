import fs from 'node:fs';
import { Chunking, chunkFile, chunkId, Id, isChunkBuffer, recycleChunkBuffer, RepoKeys, StreamChunker } from '@keep/core';

/** What a file in the target holds, against a snapshot entry's chunk ids. */
export type ContentState = 'same' | 'differs' | 'missing' | 'not a regular file';

/** Files up to this size are read in one synchronous call (as backup reads them). */
const SMALL_FILE = 1024 * 1024;
/** O_NONBLOCK: a FIFO planted where a file belongs must not block the open. */
const READ_FLAGS = fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK;

/**
 * Compare a file in the target with a snapshot entry without fetching
 * anything: the file is chunked as backup chunks it (the repository's
 * chunker; keyed repositories with their gear table) and each chunk's keyed
 * id compared with the entry's, stopping at the first that differs. Its size
 * is compared first, so a file of another size is never read. Opened without
 * following a symlink, and proved a regular file through its descriptor.
 */
export async function compareContent(p: Buffer, ids: Id[], size: number, chunking: Chunking, keys: RepoKeys): Promise<ContentState> {
  let fd: number;
  try {
    fd = fs.openSync(p, READ_FLAGS);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return 'missing';
    if (code === 'ELOOP' || code === 'ENXIO') return 'not a regular file'; // a symlink; a FIFO without a writer
    throw e;
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) return 'not a regular file';
    if (st.size !== size) return 'differs';
    let i = 0;
    let same = true;
    const chunks = size < SMALL_FILE ? StreamChunker.file(fd, chunking, size) : chunkFile(fd, chunking, size);
    for await (const chunk of chunks) {
      same = i < ids.length && chunkId(keys, chunk).equals(ids[i]);
      i++;
      if (isChunkBuffer(chunk)) recycleChunkBuffer(chunk.buffer);
      if (!same) break;
    }
    return same && i === ids.length ? 'same' : 'differs';
  } finally {
    fs.closeSync(fd);
  }
}
