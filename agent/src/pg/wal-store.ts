import type { FileHandle } from 'node:fs/promises';
import { CHUNK_ROOM, chunkBuffer, chunkId, Compression, emptyStats, Id, KeepError, keepChunkSpares, keyedHasher, toHex, TreeBuilder } from '@keep/core';
import type { WalkResult } from '../backup/run.js';
import { uploadTree, Uploader } from '../backup/uploader.js';
import type { Unlocked } from '../repo/open.js';

/**
 * WAL segments are written in fixed-size chunks, not content-defined ones:
 * a segment is fixed-size, barely repeats another (PostgreSQL recycles and
 * overwrites them), and content-defined chunking cost a third of a push's
 * CPU. Fixed chunks still dedup the zero-filled tail of a switched segment.
 * Readers do not care: a file node lists its blob ids, the cut points are the
 * writer's choice (wal-fetch and `keep pg restore` read it unchanged).
 */
export const WAL_CHUNK = 1024 * 1024;

/**
 * WAL is stored at zstd 1 (or not compressed when the job says none): it is
 * written once per segment on PostgreSQL's critical path and read back only
 * for a restore, and level 3 cost three times the CPU for a few per cent.
 */
export function walCompression(c: Compression): Compression {
  return c === 'none' ? 'none' : 'low';
}

/**
 * A WAL file's chunks being read: every chunk into a chunk buffer (core's
 * chunker.ts), by the thread pool, all at once (a segment is 16 MiB, what
 * reading it whole held before). A chunk buffer goes to a seal worker without
 * a copy, is sealed where it lies and comes back to the spares once sent, so
 * the next segment reads into memory already mapped: fresh buffers cost the
 * worker a page-faulting copy of every sealed MiB and the main thread its
 * collections (about a third of a push's CPU, docs/POSTGRESQL.md). The reads
 * run while the session opens; the main thread only hashes.
 */
export function readWalChunks(fh: FileHandle, size: number, chunk: number): Promise<Buffer>[] {
  const reads: Promise<Buffer>[] = [];
  // the next segment finds this one's buffers among the spares, all of them
  keepChunkSpares(Math.ceil(size / chunk) * (CHUNK_ROOM.head + chunk + CHUNK_ROOM.tail));
  for (let off = 0; off < size; off += chunk) {
    const len = Math.min(chunk, size - off);
    const buf = chunkBuffer(len);
    const read = fh.read(buf, 0, len, off).then(
      ({ bytesRead }) => {
        if (bytesRead !== len) throw new KeepError('INVALID_ARGUMENT', `the WAL file changed size while being read (${bytesRead} of ${len} bytes at ${off})`);
        return buf;
      },
      (e: NodeJS.ErrnoException) => {
        throw new KeepError('NOT_FOUND', `cannot read the WAL file: ${e.code ?? e.message}`);
      },
    );
    read.catch(() => undefined); // a push that fails early leaves later reads unawaited
    reads.push(read);
  }
  return reads;
}

/** The chunk size a WAL file is cut in, in this repository (never above its largest chunk). */
export function walChunkSize(repo: Unlocked): number {
  return Math.max(1, Math.min(WAL_CHUNK, repo.chunking.max));
}

/**
 * One WAL file as a snapshot's single entry: its chunks (as `readWalChunks`
 * delivers them) and its tree node sent through `uploader`. Each chunk is
 * named and folded into the whole file's content id before it is handed
 * over; `first` sees the first chunk (the segment's header) first.
 */
export async function storeWalFile(
  repo: Unlocked,
  uploader: Uploader,
  o: { name: string; size: number; chunks: Promise<Buffer>[]; compression: Compression; now: number; tags: (contentId: string) => string[]; first?: (chunk: Buffer) => void; onChunks?: () => void },
): Promise<WalkResult & { contentId: string }> {
  const started = o.now;
  const whole = keyedHasher(repo.keys.chunkIdKey);
  const ids: Id[] = [];
  for (const [i, read] of o.chunks.entries()) {
    const chunk = await read;
    if (i === 0) o.first?.(chunk);
    whole.update(chunk);
    const id = chunkId(repo.keys, chunk);
    ids.push(id);
    await uploader.addChunk(id, chunk);
  }
  o.onChunks?.();
  const contentId = toHex(whole.digest());
  const t: [number, number] = [Math.floor(started / 1000), (started % 1000) * 1e6];
  const b = new TreeBuilder();
  b.addFile({ name: Buffer.from(o.name), type: 'file', mode: 0o600, uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0, mtime: t, ctime: t, ino: 0, dev: 0, nlink: 1, size: o.size }, ids);
  const root = await uploadTree(uploader, repo.keys, b, o.compression);
  const stats = { ...emptyStats(), files: 1, files_new: 1, bytes: o.size, bytes_read: o.size };
  return { root, stats, started, tags: o.tags(contentId), contentId };
}
