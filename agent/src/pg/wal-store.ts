import { chunkId, Compression, emptyStats, Id, toHex, TreeBuilder } from '@keep/core';
import type { WalkResult } from '../backup/run.js';
import { uploadChunks, uploadTree, Uploader } from '../backup/uploader.js';
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

/** One WAL file as a snapshot's single entry: chunks and tree sent through `uploader`; `contentId` set once known. */
export async function storeWalFile(repo: Unlocked, uploader: Uploader, o: { name: string; data: Buffer; compression: Compression; now: number; tags: (contentId: string) => string[]; onChunks?: () => void }): Promise<WalkResult & { contentId: string }> {
  const started = o.now;
  const size = Math.max(1, Math.min(WAL_CHUNK, repo.chunking.max));
  const parts: Buffer[] = [];
  for (let off = 0; off < o.data.length; off += size) parts.push(o.data.subarray(off, off + size));
  // the chunks go to the seal workers first; the whole file's content id is hashed here while they seal
  const { ids } = await uploadChunks(uploader, repo.keys, parts);
  o.onChunks?.();
  const contentId = toHex(chunkId(repo.keys, o.data));
  const t: [number, number] = [Math.floor(started / 1000), (started % 1000) * 1e6];
  const b = new TreeBuilder();
  b.addFile({ name: Buffer.from(o.name), type: 'file', mode: 0o600, uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0, mtime: t, ctime: t, ino: 0, dev: 0, nlink: 1, size: o.data.length }, ids as Id[]);
  const root = await uploadTree(uploader, repo.keys, b, o.compression);
  const stats = { ...emptyStats(), files: 1, files_new: 1, bytes: o.data.length, bytes_read: o.data.length };
  return { root, stats, started, tags: o.tags(contentId), contentId };
}
