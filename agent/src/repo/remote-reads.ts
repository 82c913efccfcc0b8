import { create, toBinary } from '@bufbuild/protobuf';
import grpc from '@grpc/grpc-js';
import { Id, KeepError, toHex } from '@keep/core';
import { AGENT_MAX_MESSAGE_BYTES, FRAME_PREFIX, grpcServiceDefinition, ReadBlobsParser, ReadBlobsRequestSchema, RepositoryService, writeFramePrefix } from '@keep/proto';
import type { CallStatus, StreamCall, StreamSession } from './remote-stream.js';
import type { Deferred } from './remote-session.js';

/** Ids per ReadBlobs call, and how many such calls run at once. */
const READ_BATCH = 1024;
const READ_STREAMS = 4;
/** Smallest ReadBlobs batch worth a call of its own when spreading a backlog over idle streams. */
const READ_MIN_SPLIT = 8;
/** Blobs per ReadBlobs message, in bytes (keepd gathers small blobs up to this; per-message costs dominate small files). */
const READ_MESSAGE_BYTES = 1024 * 1024;
/** Largest ReadBlobs message accepted: a max-size blob travels alone (as grpc.max_receive_message_length). */
const MAX_READ_MESSAGE = AGENT_MAX_MESSAGE_BYTES;

const READ_BLOBS_PATH = grpcServiceDefinition(RepositoryService).readBlobs.path;

export const closedError = () => new KeepError('INVALID_ARGUMENT', 'the connection to keepd is closed');

/** One id asked for by getBlob, with everyone waiting for it. */
interface BlobRequest {
  id: Id;
  hex: string;
  waiters: Deferred<Buffer>[];
}

/**
 * getBlob() for a keepd connection: ids asked for in the same turn of the
 * event loop share a ReadBlobs call, several calls run in parallel, and a
 * blob asked for twice is fetched once.
 */
export class RemoteBlobReader {
  // ids not yet sent (insertion order), ids in a running call
  private readonly blobQueue = new Map<string, BlobRequest>();
  private readonly blobInFlight = new Map<string, BlobRequest>();
  private readsRunning = 0;
  /** ReadBlobsRequest.source: whose bytes to read (readAs) */
  readSource = '';
  private flushScheduled = false;
  private closed = false;

  constructor(
    private readonly streams: StreamSession,
    private readonly mapError: (e: unknown) => KeepError,
  ) {}

  getBlob(id: Id): Promise<Buffer> {
    if (this.closed) return Promise.reject(closedError());
    const hex = toHex(id);
    return new Promise<Buffer>((resolve, reject) => {
      const req = this.blobQueue.get(hex) ?? this.blobInFlight.get(hex);
      if (req) {
        req.waiters.push({ resolve, reject });
        return;
      }
      this.blobQueue.set(hex, { id, hex, waiters: [{ resolve, reject }] });
      if (!this.flushScheduled) {
        // Let the caller's other getBlob calls of this turn join the batch.
        this.flushScheduled = true;
        setImmediate(() => {
          this.flushScheduled = false;
          this.pumpReads();
        });
      }
    });
  }

  private pumpReads(): void {
    while (this.readsRunning < READ_STREAMS && this.blobQueue.size > 0) {
      const idle = READ_STREAMS - this.readsRunning;
      const per = Math.min(READ_BATCH, Math.max(READ_MIN_SPLIT, Math.ceil(this.blobQueue.size / idle)));
      const batch: BlobRequest[] = [];
      for (const [hex, req] of this.blobQueue) {
        if (batch.length >= per) break;
        this.blobQueue.delete(hex);
        this.blobInFlight.set(hex, req);
        batch.push(req);
      }
      this.readBatch(batch);
    }
  }

  /** One ReadBlobs call; the server streams the blobs back in request order. */
  private readBatch(batch: BlobRequest[]): void {
    this.readsRunning++;
    const left = new Map(batch.map((r) => [r.hex, r]));
    let failure: KeepError | undefined;
    let done = false;

    const finish = () => {
      if (done) return;
      done = true;
      this.readsRunning--;
      const rest = [...left.values()];
      for (const r of rest) this.blobInFlight.delete(r.hex);
      if (failure?.code === 'NOT_FOUND' && rest.length) {
        // The stream stopped at a blob the server lacks: fail that one, ask again for the rest.
        const missing = rest.find((r) => failure!.message.includes(r.hex)) ?? rest[0];
        for (const w of missing.waiters) w.reject(new KeepError('NOT_FOUND', `blob ${missing.hex} is not in the repository (${failure.message})`));
        for (const r of rest) if (r !== missing) this.blobQueue.set(r.hex, r);
      } else {
        for (const r of rest) {
          const e = failure ?? new KeepError('NOT_FOUND', `blob ${r.hex} is not in the repository`);
          for (const w of r.waiters) w.reject(e);
        }
      }
      this.pumpReads();
    };

    const parser = new ReadBlobsParser((id, data) => {
      const hex = toHex(id);
      const req = left.get(hex);
      if (!req) return; // not asked for in this call (or sent twice): ignore
      left.delete(hex);
      this.blobInFlight.delete(hex);
      // Each caller owns what it gets (the restore moves it to a worker): a second asker gets a copy.
      req.waiters.forEach((w, i) => w.resolve(i === 0 ? data : Buffer.from(data)));
    });
    let call: StreamCall;
    try {
      call = this.streams.call(READ_BLOBS_PATH, parser, MAX_READ_MESSAGE);
    } catch (e) {
      failure = this.mapError(e);
      finish();
      return;
    }
    call.on('status', (s: CallStatus) => {
      if (s.code !== grpc.status.OK) failure ??= this.mapError(s);
      finish();
    });
    const req = toBinary(ReadBlobsRequestSchema, create(ReadBlobsRequestSchema, { ids: batch.map((r) => r.id), maxMessageBytes: READ_MESSAGE_BYTES, source: this.readSource }));
    const framed = Buffer.allocUnsafe(FRAME_PREFIX + req.length);
    writeFramePrefix(framed, 0, req.length);
    framed.set(req, FRAME_PREFIX);
    call.end(framed);
  }

  /** Fail every read not yet sent: the connection is closing. */
  close(): void {
    this.closed = true;
    const e = closedError();
    for (const r of this.blobQueue.values()) for (const w of r.waiters) w.reject(e);
    this.blobQueue.clear();
  }
}
