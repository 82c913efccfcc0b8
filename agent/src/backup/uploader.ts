import crypto from 'node:crypto';
import { chunkId, Compression, Id, isChunkBuffer, recycleChunkBuffer, RepoKeys, SealedBlob, SealPool, sealTree, SESSION_BLOB_LIMIT, SESSION_SALT_SIZE, toHex, TreeBuilder, treeId } from '@keep/core';
import type { BackupSession } from '../repo/connection.js';

/** Offer ids to the repository in batches of this many... */
const BATCH_IDS = 256;
/** ...or of this many plaintext bytes, whichever comes first. */
const BATCH_BYTES = 4 * 1024 * 1024;
/** Plaintext per seal job: the first job's blobs travel while the next one is sealed. */
const JOB_BYTES = 1024 * 1024;
/**
 * Bytes accepted and not yet stored (plaintext until sealed, then the sealed
 * blob until the repository acknowledges it); the producer waits beyond this,
 * so memory does not grow with the data. A few MiB keep the worker and the
 * repository busy; more only holds memory.
 */
const MAX_IN_FLIGHT_BYTES = 4 * 1024 * 1024;

export interface UploadStats {
  chunks_new: number;
  bytes_sent: number;
  /** tree nodes the repository lacked and was sent (restic's tree_blobs) */
  trees_new: number;
  /** plaintext bytes of the chunks sent, and the sealed size of the trees sent (restic's data_added) */
  data_added: number;
}

/** A chunk the repository already has: its buffer can carry another chunk. */
function recycle(plaintext: Buffer): void {
  if (isChunkBuffer(plaintext)) recycleChunkBuffer(plaintext.buffer);
}

/** A blob waiting in a batch: a chunk to seal, or a tree node sealed already. */
interface Pending {
  id: Id;
  plaintext?: Buffer;
  sealed?: SealedBlob;
  /** what it counts against MAX_IN_FLIGHT_BYTES */
  size: number;
}

/**
 * The pipelined upload path: chunks arrive already named (keyed hash); this
 * batches their ids, asks the repository which it lacks, seals only those on
 * the SealPool and sends them. Memory is bounded by MAX_IN_FLIGHT_BYTES:
 * `addChunk` waits while that much is between the chunker and the repository.
 */
export class Uploader {
  /** ids this session already offered (dedup within the backup itself) */
  private readonly offered = new Set<string>();
  private batch: Pending[] = [];
  private batchBytes = 0;
  /** bytes accepted (the open batch included) and not yet stored or found unneeded */
  private inFlightBytes = 0;
  private readonly inFlight = new Set<Promise<void>>();
  /** producers waiting for bytes to be released */
  private wakers: (() => void)[] = [];
  private failure: Error | undefined;
  private salt = crypto.randomBytes(SESSION_SALT_SIZE);
  private sealedUnderSalt = 0;
  readonly stats: UploadStats = { chunks_new: 0, bytes_sent: 0, trees_new: 0, data_added: 0 };

  constructor(
    private readonly session: BackupSession,
    private readonly pool: SealPool,
    private readonly compression: Compression,
  ) {}

  /** The session salt for the next `n` blobs; rotated long before GCM's nonce bound. */
  sealSalt(n = 1): Buffer {
    this.sealedUnderSalt += n;
    if (this.sealedUnderSalt > SESSION_BLOB_LIMIT) {
      this.salt = crypto.randomBytes(SESSION_SALT_SIZE);
      this.sealedUnderSalt = n;
    }
    return this.salt;
  }

  /** Hand over a named chunk (the uploader may give `plaintext` to a worker: do not reuse it). */
  async addChunk(id: Id, plaintext: Buffer): Promise<void> {
    if (this.offerChunk(id, plaintext)) await this.room();
  }

  /**
   * addChunk without the wait: true when the caller must await `room()` before
   * handing over more. Most chunks need no wait, so they cost no promise.
   */
  offerChunk(id: Id, plaintext: Buffer): boolean {
    if (this.failure) throw this.failure;
    const hex = toHex(id);
    if (this.offered.has(hex)) {
      recycle(plaintext);
      return false;
    }
    this.offered.add(hex);
    this.add({ id, plaintext, size: plaintext.length });
    return this.inFlightBytes > MAX_IN_FLIGHT_BYTES;
  }

  /** Wait while MAX_IN_FLIGHT_BYTES are between the chunker and the repository. */
  async room(): Promise<void> {
    while (this.inFlightBytes > MAX_IN_FLIGHT_BYTES && !this.failure) {
      // Whatever is batched must move, or nothing would ever be released.
      if (this.inFlight.size === 0) this.dispatch();
      await new Promise<void>((resolve) => this.wakers.push(resolve));
    }
    if (this.failure) throw this.failure;
  }

  /** A blob sealed by the caller (tree nodes); offered and sent like a chunk. */
  async addSealed(id: Id, bytes: Buffer): Promise<void> {
    if (this.failure) throw this.failure;
    const hex = toHex(id);
    if (this.offered.has(hex)) return;
    this.offered.add(hex);
    this.add({ id, sealed: { id, bytes }, size: bytes.length });
  }

  private add(p: Pending): void {
    this.batch.push(p);
    this.batchBytes += p.size;
    this.inFlightBytes += p.size;
    if (this.batch.length >= BATCH_IDS || this.batchBytes >= BATCH_BYTES) this.dispatch();
  }

  private release(bytes: number): void {
    this.inFlightBytes -= bytes;
    const w = this.wakers;
    this.wakers = [];
    for (const wake of w) wake();
  }

  /** Offer the open batch; seal and send what the repository lacks. */
  private dispatch(): void {
    if (this.batch.length === 0) return;
    const batch = this.batch;
    this.batch = [];
    this.batchBytes = 0;
    this.track(
      (async () => {
        const want = await this.session.missing(batch.map((b) => b.id));
        const sends: Promise<void>[] = [];
        let job: Pending[] = [];
        let jobBytes = 0;
        let w = 0;
        for (const b of batch) {
          // `missing` answers a subsequence of the ids offered, in order.
          if (w < want.length && (want[w] === b.id || want[w].equals(b.id))) w++;
          else {
            if (b.plaintext) recycle(b.plaintext);
            this.release(b.size);
            continue;
          }
          if (b.sealed) {
            sends.push(this.send([b.sealed], b.size, 0));
            continue;
          }
          job.push(b);
          jobBytes += b.size;
          if (jobBytes >= JOB_BYTES) {
            sends.push(this.sealAndSend(job, jobBytes));
            job = [];
            jobBytes = 0;
          }
        }
        if (job.length) sends.push(this.sealAndSend(job, jobBytes));
        await Promise.all(sends);
      })(),
    );
  }

  private async sealAndSend(job: Pending[], bytes: number): Promise<void> {
    const items = job.map((b) => ({ id: b.id, plaintext: b.plaintext! }));
    // Chunks from the chunker own their buffers: handed to the worker, not copied.
    const sealed = await this.pool.sealMany(this.sealSalt(items.length), items, this.compression, true);
    await this.send(sealed, bytes, sealed.length);
  }

  private async send(blobs: SealedBlob[], bytes: number, chunks: number): Promise<void> {
    let size = 0;
    for (const b of blobs) size += b.bytes.length;
    const count = blobs.length;
    // The session holds the blobs until they are written, not until acknowledged: keep no reference here.
    const stored = this.session.put(blobs);
    blobs = [];
    await stored;
    // What crossed to the repository, new there or not (the `bytes_sent` figure): not the server's "new bytes".
    this.stats.bytes_sent += size;
    this.stats.chunks_new += chunks;
    if (chunks === 0) this.stats.trees_new += count;
    this.stats.data_added += chunks === 0 ? size : bytes;
    this.release(bytes);
  }

  private track(p: Promise<void>): void {
    const t: Promise<void> = p
      .catch((e: Error) => {
        this.failure ??= e;
      })
      .finally(() => {
        this.inFlight.delete(t);
        // wake waiting producers: they see the failure, or may dispatch what is batched
        this.release(0);
      });
    this.inFlight.add(t);
  }

  /** Send what is batched and wait for everything in flight. */
  async finish(): Promise<void> {
    this.dispatch();
    while (this.inFlight.size) await Promise.all(this.inFlight);
    if (this.failure) throw this.failure;
  }
}

/** A file's chunk list and the bytes it covers. */
export interface NamedChunks {
  ids: Id[];
  size: number;
}

/**
 * Name each chunk (keyed hash) and hand it to the uploader, in order; returns
 * the chunk list and the bytes it covers. Every writer of file content (the
 * archiver, the PostgreSQL base backup) goes through here.
 */
export async function uploadChunks(uploader: Uploader, keys: RepoKeys, chunks: AsyncIterable<Buffer> | Iterable<Buffer>, onBytes?: (n: number) => void): Promise<NamedChunks> {
  const named: NamedChunks = { ids: [], size: 0 };
  for await (const chunk of chunks) if (offerNamed(uploader, keys, chunk, named, onBytes)) await uploader.room();
  return named;
}

/** uploadChunks for chunks already in memory (a small file's): no promise per chunk. */
export async function uploadChunkList(uploader: Uploader, keys: RepoKeys, chunks: Buffer[], onBytes?: (n: number) => void): Promise<NamedChunks> {
  const named: NamedChunks = { ids: [], size: 0 };
  for (const chunk of chunks) if (offerNamed(uploader, keys, chunk, named, onBytes)) await uploader.room();
  return named;
}

/** Name one chunk into `named` and offer it; true when the caller must wait for room. */
function offerNamed(uploader: Uploader, keys: RepoKeys, chunk: Buffer, named: NamedChunks, onBytes?: (n: number) => void): boolean {
  const id = chunkId(keys, chunk);
  named.ids.push(id);
  named.size += chunk.length;
  onBytes?.(chunk.length);
  return uploader.offerChunk(id, chunk);
}

/**
 * Seal a directory's tree node and hand it to the uploader; returns its id.
 * With `previous` (the parent snapshot's node for this directory), a node
 * with that very id is neither sealed nor offered: it is stored, and the open
 * session keeps the parent from forget (should it vanish all the same,
 * commit's closure check fails the backup rather than publish a hole).
 */
export async function uploadTree(uploader: Uploader, keys: RepoKeys, b: TreeBuilder, compression: Compression, previous?: Id): Promise<Id> {
  const { edges, payload } = b.build();
  const known = previous && treeId(keys, edges, payload);
  if (known && known.equals(previous)) return previous;
  const { id, bytes } = sealTree(keys, uploader.sealSalt(), edges, payload, compression, known);
  await uploader.addSealed(id, bytes);
  return id;
}
