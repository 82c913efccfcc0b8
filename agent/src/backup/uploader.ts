import crypto from 'node:crypto';
import { chunkId, Compression, Id, RepoKeys, SealPool, sealTree, SESSION_BLOB_LIMIT, SESSION_SALT_SIZE, toHex, TreeBuilder } from '@keep/core';
import type { BackupSession } from '../repo/connection.js';

/** Offer ids to the repository in batches of this many... */
const BATCH_IDS = 128;
/** ...or of this many plaintext bytes, whichever comes first. */
const BATCH_BYTES = 4 * 1024 * 1024;
/** Plaintext bytes held between chunking and the repository; the producer waits beyond this. */
const MAX_IN_FLIGHT_BYTES = 16 * 1024 * 1024;

export interface UploadStats {
  chunks_new: number;
  bytes_sent: number;
}

/**
 * The pipelined upload path: chunks arrive already named (keyed hash); this
 * batches their ids, asks the repository which it lacks, seals only those on
 * the worker pool and sends them. Memory is bounded by MAX_IN_FLIGHT_BYTES:
 * `addChunk` waits while that much is between the chunker and the repository.
 */
export class Uploader {
  /** ids this session already offered (dedup within the backup itself) */
  private readonly offered = new Set<string>();
  private batch: { id: Id; plaintext: Buffer }[] = [];
  private batchBytes = 0;
  private inFlightBytes = 0;
  private readonly inFlight = new Set<Promise<void>>();
  private failure: Error | undefined;
  private salt = crypto.randomBytes(SESSION_SALT_SIZE);
  private sealedUnderSalt = 0;
  readonly stats: UploadStats = { chunks_new: 0, bytes_sent: 0 };

  constructor(
    private readonly session: BackupSession,
    private readonly pool: SealPool,
    private readonly compression: Compression,
  ) {}

  /** The session salt a blob sealed now should use; rotated long before GCM's nonce bound. */
  sealSalt(): Buffer {
    if (++this.sealedUnderSalt > SESSION_BLOB_LIMIT) {
      this.salt = crypto.randomBytes(SESSION_SALT_SIZE);
      this.sealedUnderSalt = 1;
    }
    return this.salt;
  }

  async addChunk(id: Id, plaintext: Buffer): Promise<void> {
    if (this.failure) throw this.failure;
    const hex = toHex(id);
    if (this.offered.has(hex)) return;
    this.offered.add(hex);
    this.batch.push({ id, plaintext });
    this.batchBytes += plaintext.length;
    if (this.batch.length >= BATCH_IDS || this.batchBytes >= BATCH_BYTES) this.dispatch();
    while (this.inFlightBytes > MAX_IN_FLIGHT_BYTES && this.inFlight.size) await Promise.race(this.inFlight);
    if (this.failure) throw this.failure;
  }

  /** A blob sealed by the caller (tree nodes); offered and sent like a chunk. */
  async addSealed(id: Id, bytes: Buffer): Promise<void> {
    if (this.failure) throw this.failure;
    const hex = toHex(id);
    if (this.offered.has(hex)) return;
    this.offered.add(hex);
    this.track(
      (async () => {
        const [want] = await this.session.missing([id]);
        if (!want) return;
        const size = bytes.length;
        await this.session.put([{ id, bytes }]);
        // What crossed to the repository, new there or not (CLI.md): not the server's "new bytes".
        this.stats.bytes_sent += size;
      })(),
      0,
    );
  }

  private dispatch(): void {
    if (this.batch.length === 0) return;
    const batch = this.batch;
    const bytes = this.batchBytes;
    this.batch = [];
    this.batchBytes = 0;
    this.inFlightBytes += bytes;
    this.track(
      (async () => {
        const want = new Set((await this.session.missing(batch.map((b) => b.id))).map(toHex));
        const sealed = await Promise.all(
          batch.filter((b) => want.has(toHex(b.id))).map(async (b) => ({ id: b.id, bytes: await this.pool.seal(this.sealSalt(), b.id, b.plaintext, this.compression, true) })),
        );
        if (sealed.length) {
          const size = sealed.reduce((n, b) => n + b.bytes.length, 0);
          await this.session.put(sealed);
          this.stats.bytes_sent += size;
          this.stats.chunks_new += sealed.length;
        }
      })(),
      bytes,
    );
  }

  private track(p: Promise<void>, bytes: number): void {
    const t: Promise<void> = p
      .catch((e: Error) => {
        this.failure ??= e;
      })
      .finally(() => {
        this.inFlight.delete(t);
        this.inFlightBytes -= bytes;
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

/**
 * Name each chunk (keyed hash) and hand it to the uploader, in order; returns
 * the chunk list and the bytes it covers. Every writer of file content (the
 * archiver, the PostgreSQL base backup) goes through here.
 */
export async function uploadChunks(uploader: Uploader, keys: RepoKeys, chunks: AsyncIterable<Buffer> | Iterable<Buffer>, onBytes?: (n: number) => void): Promise<{ ids: Id[]; size: number }> {
  const ids: Id[] = [];
  let size = 0;
  for await (const chunk of chunks) {
    const id = chunkId(keys, chunk);
    ids.push(id);
    size += chunk.length;
    onBytes?.(chunk.length);
    await uploader.addChunk(id, chunk);
  }
  return { ids, size };
}

/** Seal a directory's tree node and hand it to the uploader; returns its id. */
export async function uploadTree(uploader: Uploader, keys: RepoKeys, b: TreeBuilder, compression: Compression): Promise<Id> {
  const { edges, payload } = b.build();
  const { id, bytes } = sealTree(keys, uploader.sealSalt(), edges, payload, compression);
  await uploader.addSealed(id, bytes);
  return id;
}
