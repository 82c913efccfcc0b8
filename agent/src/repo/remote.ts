import fs from 'node:fs';
import tls from 'node:tls';
import { create, toBinary } from '@bufbuild/protobuf';
import grpc from '@grpc/grpc-js';
import {
  CheckOptions,
  CheckReport,
  Id,
  KeepError,
  KeyFile,
  parseKeyFile,
  parseRepoConfig,
  RepoConfig,
  SealedBlob,
  SealedSnapshot,
  Snapshot,
  toHex,
} from '@keep/core';
import {
  AddKeyRequestSchema,
  AGENT_MAX_MESSAGE_BYTES,
  AddKeyResponse,
  bearerMetadata,
  CheckRequestSchema,
  CheckResponse,
  CLIENT_KEEPALIVE_OPTIONS,
  CloseSessionRequestSchema,
  CloseSessionResponse,
  CommitRequestSchema,
  CommitResponse,
  decodeUploadAck,
  fromGrpcError,
  FRAME_PREFIX,
  GetConfigRequestSchema,
  GetConfigResponse,
  grpcServiceDefinition,
  ListSnapshotsRequestSchema,
  ListSnapshotsResponse,
  MAX_IDS_PER_REQUEST,
  MessageSink,
  OfferRequestSchema,
  OfferResponse,
  OpenSessionRequestSchema,
  OpenSessionResponse,
  parseGrpcAddress,
  PROTOCOL_VERSION,
  ReadBlobsParser,
  ReadBlobsRequestSchema,
  RemoveKeyRequestSchema,
  RemoveKeyResponse,
  RepositoryService,
  snapshotFromWire,
  snapshotToWire,
  StatsRequestSchema,
  StatsResponse,
  UploadAck,
  UploadEncoder,
  writeFramePrefix,
} from '@keep/proto';
import type { BackupSession, RepoConnection, RepoStats } from './connection.js';
import { CallStatus, StreamCall, StreamSession } from './remote-stream.js';

/*
 * The agent's side of the keep.v1 wire contract (proto/keep/v1/repository.proto).
 *
 * - Unary calls carry a deadline; streams do not (a restore or an upload may
 *   rightly take hours, and keepalive pings detect a dead peer instead).
 * - Unary calls go through grpc-js; the two bulk streams (Upload, ReadBlobs)
 *   through an HTTP/2 session of their own (remote-stream.ts), where no
 *   message is copied on the way out or gathered on the way in.
 * - Uploads use one long-lived bidi stream per session. The server acknowledges
 *   every UploadRequest, in the order written, once the blob is verified and
 *   written; a put() resolves when all of its blobs are acknowledged. Upload
 *   messages are encoded by hand around each blob, in the room before and
 *   after it (packages/proto/src/codecs/upload.ts), and written from the blob's own buffer.
 * - getBlob() calls are batched into ReadBlobs streams (ids asked for in the
 *   same turn of the event loop share a call), several calls in parallel; keepd
 *   packs several blobs into each response message (max_message_bytes), which
 *   are decoded by hand as they arrive (packages/proto/src/codecs/read-blobs-parse.ts): each blob lands in an
 *   ArrayBuffer of its own, which its caller owns.
 * - The bearer token travels as call metadata only and is never part of a
 *   message, an error or a log line.
 */

/** grpc-js channel options. Message limits leave room for the largest stored blob; keepalive pings only while calls are open. */
const CHANNEL_OPTIONS: grpc.ChannelOptions = {
  'grpc.max_receive_message_length': AGENT_MAX_MESSAGE_BYTES,
  'grpc.max_send_message_length': AGENT_MAX_MESSAGE_BYTES,
  ...CLIENT_KEEPALIVE_OPTIONS,
};

/** Deadline of unary calls. */
const UNARY_DEADLINE_MS = 5 * 60_000;
/** Commit flushes and checks the closure of the whole snapshot: allow it longer. */
const COMMIT_DEADLINE_MS = 30 * 60_000;
/** Ids per Offer call (as many as keepd accepts). */
const OFFER_BATCH = MAX_IDS_PER_REQUEST;
/** Ids per ReadBlobs call, and how many such calls run at once. */
const READ_BATCH = 1024;
const READ_STREAMS = 4;
/** Smallest ReadBlobs batch worth a call of its own when spreading a backlog over idle streams. */
const READ_MIN_SPLIT = 8;
/** Blobs per ReadBlobs message, in bytes (keepd gathers small blobs up to this; per-message costs dominate small files). */
const READ_MESSAGE_BYTES = 1024 * 1024;
/** Largest ReadBlobs message accepted: a max-size blob travels alone (as grpc.max_receive_message_length). */
const MAX_READ_MESSAGE = AGENT_MAX_MESSAGE_BYTES;
/** Largest upload acknowledgement accepted (an id, a flag, a count: under 64 bytes). */
const MAX_ACK_BYTES = 64 * 1024;
/** How long abort() lets the upload stream finish before cancelling it. */
const ABORT_GRACE_MS = 10_000;

const DEF = grpcServiceDefinition(RepositoryService);

type Method = keyof typeof RepositoryService.method;

/**
 * Node's CAs plus NODE_EXTRA_CA_CERTS, when bin/keep.js kept Node from loading
 * the latter at start-up (it moves the variable to KEEP_DEFERRED_EXTRA_CA_CERTS):
 * what grpc-js would otherwise have trusted. null leaves grpc-js its defaults
 * (GRPC_DEFAULT_SSL_ROOTS_FILE_PATH, which it prefers to Node's, or Node's CAs).
 */
function deferredExtraCas(): Buffer | null {
  const file = process.env.KEEP_DEFERRED_EXTRA_CA_CERTS;
  if (!file || process.env.GRPC_DEFAULT_SSL_ROOTS_FILE_PATH) return null;
  let extra: string;
  try {
    extra = fs.readFileSync(file, 'utf8');
  } catch (e) {
    // Node itself only warns about an unreadable NODE_EXTRA_CA_CERTS
    process.stderr.write(`keep: warning: cannot read NODE_EXTRA_CA_CERTS ${file}: ${(e as Error).message}\n`);
    return null;
  }
  return Buffer.from(`${tls.rootCertificates.join('\n')}\n${extra}`);
}

export interface RemoteOptions {
  /** Bearer token sent on every call. Never logged. */
  token?: string;
  /** PEM CA certificate file to trust for grpcs:// (default: Node's bundled roots). */
  caFile?: string;
  /** allow plaintext grpc:// to a host that is not loopback (--insecure, KEEP_INSECURE=1) */
  insecure?: boolean;
}

interface Deferred<T> {
  resolve(v: T): void;
  reject(e: Error): void;
}

/** One id asked for by getBlob, with everyone waiting for it. */
interface BlobRequest {
  id: Id;
  hex: string;
  waiters: Deferred<Buffer>[];
}

/** A repository served by keepd, reached over gRPC. */
export class RemoteConnection implements RepoConnection {
  readonly address: string;
  readonly secure: boolean;
  private readonly client: grpc.Client;
  /** the bulk streams' HTTP/2 session (remote-stream.ts) */
  private readonly streams: StreamSession;
  /** Kept in a private slot so inspecting or serializing the connection cannot show it. */
  readonly #token: string | undefined;
  private meta?: Promise<{ config: RepoConfig; keys: KeyFile[]; damaged: string[]; readOnly: boolean }>;

  // getBlob batching: ids not yet sent (insertion order), ids in a running call
  private readonly blobQueue = new Map<string, BlobRequest>();
  private readonly blobInFlight = new Map<string, BlobRequest>();
  private readsRunning = 0;
  /** ReadBlobsRequest.source: whose bytes to read (readAs) */
  private readSource = '';
  private flushScheduled = false;
  private closed = false;

  constructor(
    readonly location: string,
    opts: RemoteOptions = {},
  ) {
    const loc = parseGrpcAddress(location, opts.insecure);
    this.address = loc.address;
    this.secure = loc.secure;
    if (opts.token !== undefined && !/^[\x21-\x7e]+$/.test(opts.token)) {
      // grpc-js would reject it with an error that quotes the value: say so without it.
      throw new KeepError('INVALID_ARGUMENT', 'the keepd token holds characters not allowed in a header (whitespace or non-ASCII)');
    }
    this.#token = opts.token;
    let creds: grpc.ChannelCredentials;
    let ca: Buffer | null = null;
    if (loc.secure) {
      if (opts.caFile) {
        try {
          ca = fs.readFileSync(opts.caFile);
        } catch (e) {
          throw new KeepError('INVALID_ARGUMENT', `cannot read CA certificate ${opts.caFile}: ${(e as Error).message}`);
        }
      }
      ca ??= deferredExtraCas();
      creds = grpc.credentials.createSsl(ca);
    } else {
      creds = grpc.credentials.createInsecure();
    }
    const Client = grpc.makeGenericClientConstructor(DEF, 'RepositoryService');
    this.client = new Client(loc.address, creds, CHANNEL_OPTIONS);
    // The same trust as grpc-js's: the CA given, else its default roots file, else Node's.
    const rootsFile = process.env.GRPC_DEFAULT_SSL_ROOTS_FILE_PATH;
    if (loc.secure && !ca && rootsFile) {
      try {
        ca = fs.readFileSync(rootsFile);
      } catch {
        /* grpc-js falls back to Node's roots too */
      }
    }
    this.streams = new StreamSession({ address: loc.address, secure: loc.secure, ca: ca ?? undefined, token: opts.token });
  }

  // ---- plumbing ------------------------------------------------------------

  private metadata(): grpc.Metadata {
    return bearerMetadata(this.#token);
  }

  /** fromGrpcError with this server's address, plus a hint when no token was configured. */
  mapError(e: unknown): KeepError {
    const k = fromGrpcError(e, this.address);
    if (k.code === 'UNAUTHENTICATED' && !this.#token && !(e instanceof KeepError)) {
      return new KeepError('UNAUTHENTICATED', `${k.message} (no token given: --token-file, KEEP_TOKEN_FILE or KEEP_TOKEN)`);
    }
    return k;
  }

  private unary<Res>(method: Method, req: unknown, deadlineMs = UNARY_DEADLINE_MS): Promise<Res> {
    if (this.closed) return Promise.reject(new KeepError('INVALID_ARGUMENT', 'the connection to keepd is closed'));
    const d = DEF[method];
    // Transport deadline only: the one place wall time enters this module.
    const options: grpc.CallOptions = deadlineMs > 0 ? { deadline: Date.now() + deadlineMs } : {};
    return new Promise<Res>((resolve, reject) => {
      this.client.makeUnaryRequest<unknown, Res>(
        d.path,
        d.requestSerialize,
        d.responseDeserialize as (b: Buffer) => Res,
        req,
        this.metadata(),
        options,
        (err, res) => (err || res === undefined ? reject(this.mapError(err ?? new Error(`${method}: empty response`))) : resolve(res)),
      );
    });
  }

  /** The upload stream of a session (no deadline): write framed UploadRequests (UploadEncoder.frame); each ack goes to `onAck`. */
  openUploadStream(onAck: (ack: UploadAck) => void): StreamCall {
    let msg = Buffer.alloc(0);
    let at = 0;
    const sink: MessageSink = {
      begin: (n) => {
        msg = Buffer.allocUnsafe(n);
        at = 0;
      },
      bytes: (piece) => {
        at += piece.copy(msg, at);
      },
      end: () => onAck(decodeUploadAck(msg)),
    };
    return this.streams.call(DEF.upload.path, sink, MAX_ACK_BYTES);
  }

  /** Unary call for sessions. */
  call<Res>(method: Method, req: unknown, deadlineMs?: number): Promise<Res> {
    return this.unary<Res>(method, req, deadlineMs);
  }

  // ---- config and keys -----------------------------------------------------

  private loadMeta(): Promise<{ config: RepoConfig; keys: KeyFile[]; damaged: string[]; readOnly: boolean }> {
    if (!this.meta) {
      this.meta = this.unary<GetConfigResponse>('getConfig', create(GetConfigRequestSchema, { protocolVersion: PROTOCOL_VERSION })).then((r) => {
        // Each key file is checked here too (an older keepd sends whatever keys/ holds).
        const keys: KeyFile[] = [];
        const damaged: string[] = [];
        for (const k of r.keyFilesJson) {
          try {
            keys.push(parseKeyFile(k));
          } catch (e) {
            damaged.push((e as Error).message);
          }
        }
        return { config: parseRepoConfig(r.configJson, `the config of ${this.location}`), keys, damaged, readOnly: r.readOnly };
      });
      this.meta.catch(() => (this.meta = undefined));
    }
    return this.meta;
  }

  async config(): Promise<RepoConfig> {
    return (await this.loadMeta()).config;
  }

  async keyFiles(): Promise<KeyFile[]> {
    return (await this.loadMeta()).keys;
  }

  async damagedKeyFiles(): Promise<string[]> {
    return (await this.loadMeta()).damaged;
  }

  /** A replica not promoted: it refuses writes (GetConfig's read_only). */
  async readOnly(): Promise<boolean> {
    return (await this.loadMeta()).readOnly;
  }

  async addKeyFile(f: KeyFile): Promise<void> {
    await this.unary<AddKeyResponse>('addKey', create(AddKeyRequestSchema, { keyFileJson: JSON.stringify(f, null, 2) + '\n' }));
    this.meta = undefined;
  }

  async removeKeyFile(id: string): Promise<void> {
    await this.unary<RemoveKeyResponse>('removeKey', create(RemoveKeyRequestSchema, { keyId: id }));
    this.meta = undefined;
  }

  // ---- backup --------------------------------------------------------------

  async beginBackup(opts: { source: string; host: string; parent?: string }): Promise<BackupSession> {
    const r = await this.unary<OpenSessionResponse>(
      'openSession',
      create(OpenSessionRequestSchema, { source: opts.source, host: opts.host, parent: opts.parent ?? '' }),
    );
    if (!r.sessionId) throw new KeepError('INTERNAL', 'keepd opened a session without an id');
    return new RemoteSession(this, r.sessionId);
  }

  // ---- restore: batched ReadBlobs --------------------------------------------

  readAs(source: string): void {
    this.readSource = source;
  }

  getBlob(id: Id): Promise<Buffer> {
    if (this.closed) return Promise.reject(new KeepError('INVALID_ARGUMENT', 'the connection to keepd is closed'));
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
    const d = DEF.readBlobs;
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
      call = this.streams.call(d.path, parser, MAX_READ_MESSAGE);
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

  // ---- listing and maintenance -----------------------------------------------

  async snapshots(filter: { source?: string } = {}): Promise<Snapshot[]> {
    const r = await this.unary<ListSnapshotsResponse>('listSnapshots', create(ListSnapshotsRequestSchema, { source: filter.source ?? '' }));
    return r.snapshots.map(snapshotFromWire);
  }

  async check(opts: CheckOptions): Promise<CheckReport> {
    // No deadline: reading every blob of a large repository takes as long as it takes.
    const r = await this.unary<CheckResponse>(
      'check',
      create(CheckRequestSchema, { readData: !!opts.readData, readDataSubset: opts.readDataSubset ?? 0 }),
      0,
    );
    try {
      return JSON.parse(r.reportJson) as CheckReport;
    } catch {
      throw new KeepError('INTERNAL', 'keepd sent a check report that is not valid JSON');
    }
  }

  async repoStats(): Promise<RepoStats> {
    const r = await this.unary<StatsResponse>('stats', create(StatsRequestSchema, {}));
    return { snapshots: Number(r.snapshots), blobs: Number(r.blobs), packs: Number(r.packs), stored_bytes: Number(r.storedBytes) };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const e = new KeepError('INVALID_ARGUMENT', 'the connection to keepd is closed');
    for (const r of this.blobQueue.values()) for (const w of r.waiters) w.reject(e);
    this.blobQueue.clear();
    this.streams.close();
    this.client.close();
  }
}

/** Blobs of one put() still awaiting acknowledgement. */
interface PutState extends Deferred<number> {
  remaining: number;
  newBytes: number;
  settled: boolean;
}

/**
 * A writer session on keepd. All blobs travel on one bidi Upload stream,
 * opened on the first put(); the server acknowledges them in write order.
 */
class RemoteSession implements BackupSession {
  private call?: StreamCall;
  private readonly encoder: UploadEncoder;
  /** Settles when the upload stream has ended: resolves on OK with every blob acknowledged. */
  private finished: Promise<void> = Promise.resolve();
  private streamDone = true;
  /** Blobs written and not yet acknowledged, in write order: acks[ackHead..]. */
  private acks: { id: Id; put: PutState }[] = [];
  private ackHead = 0;
  private drainWaiters: Deferred<void>[] = [];
  /** Puts write one after another, so acks stay in the order of `acks`. */
  private writing: Promise<void> = Promise.resolve();
  private failure?: KeepError;
  private closed = false;
  private aborted = false;

  constructor(
    private readonly conn: RemoteConnection,
    readonly sessionId: string,
  ) {
    this.encoder = new UploadEncoder(sessionId);
  }

  private get unacked(): number {
    return this.acks.length - this.ackHead;
  }

  async missing(ids: Id[]): Promise<Id[]> {
    if (ids.length === 0) return [];
    const calls: Promise<OfferResponse>[] = [];
    for (let i = 0; i < ids.length; i += OFFER_BATCH) {
      calls.push(this.conn.call<OfferResponse>('offer', create(OfferRequestSchema, { sessionId: this.sessionId, ids: ids.slice(i, i + OFFER_BATCH) })));
    }
    const want = new Set<string>();
    for (const r of await Promise.all(calls)) for (const m of r.missing) want.add(toHex(m));
    // Answer with the caller's own buffers, in the caller's order.
    return ids.filter((id) => want.has(toHex(id)));
  }

  put(blobs: SealedBlob[]): Promise<number> {
    if (this.closed) return Promise.reject(new KeepError('INVALID_ARGUMENT', 'the backup session is closed'));
    if (this.failure) return Promise.reject(this.failure);
    if (blobs.length === 0) return Promise.resolve(0);
    return new Promise<number>((resolve, reject) => {
      const put: PutState = { remaining: blobs.length, newBytes: 0, settled: false, resolve, reject };
      const job = this.writing.then(async () => {
        const call = this.stream();
        for (const b of blobs) {
          if (this.failure) throw this.failure;
          const msg = this.encoder.frame(b);
          this.acks.push({ id: b.id, put });
          // Written from the blob's own buffer: the stream calls back once it no longer needs it, and it can carry another chunk.
          const written = call.write(msg, b.release && (() => b.release!()));
          if (!written) await this.drain();
        }
      });
      this.writing = job.catch(() => undefined);
      job.catch((e: unknown) => this.settle(put, this.conn.mapError(e)));
    });
  }

  async commit(s: SealedSnapshot): Promise<Snapshot> {
    if (this.closed) throw new KeepError('INVALID_ARGUMENT', 'the backup session is closed');
    this.closed = true;
    await this.writing;
    if (this.failure) throw this.failure;
    if (this.call) {
      this.call.end();
      await this.finished;
    }
    const r = await this.conn.call<CommitResponse>('commit', create(CommitRequestSchema, { sessionId: this.sessionId, snapshot: snapshotToWire(s) }), COMMIT_DEADLINE_MS);
    if (!r.snapshot) throw new KeepError('INTERNAL', 'keepd committed without returning the snapshot');
    const committed = snapshotFromWire(r.snapshot);
    // A keepd from before snapshot MACs drops them (and picks its own id): the record could not be told from a forgery.
    if (committed.id !== s.id || committed.mac !== s.mac) {
      throw new KeepError('INTERNAL', `keepd committed snapshot ${committed.id} without this agent's id and MAC (a keepd older than this agent?): upgrade keepd; restore treats that snapshot as unauthenticated`);
    }
    return committed;
  }

  async abort(): Promise<void> {
    if (this.aborted) return;
    this.aborted = true;
    this.closed = true;
    if (this.call && !this.streamDone) {
      // Let the server store what it already has (a rerun reuses it), but not forever.
      const call = this.call;
      let timer: NodeJS.Timeout | undefined;
      const graceful = this.writing.then(() => {
        call.end();
        return this.finished;
      });
      const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, ABORT_GRACE_MS)));
      await Promise.race([graceful.catch(() => undefined), timeout]);
      clearTimeout(timer);
      if (!this.streamDone) call.cancel();
      this.fail(new KeepError('INVALID_ARGUMENT', 'the backup session was aborted'));
    }
    await this.conn.call<CloseSessionResponse>('closeSession', create(CloseSessionRequestSchema, { sessionId: this.sessionId })).catch(() => undefined);
  }

  // ---- the upload stream ---------------------------------------------------

  private stream(): StreamCall {
    if (this.call) return this.call;
    const call = this.conn.openUploadStream((r) => this.onAck(r));
    this.call = call;
    this.streamDone = false;
    this.finished = new Promise<void>((resolve, reject) => {
      call.on('drain', () => {
        const ws = this.drainWaiters;
        this.drainWaiters = [];
        for (const w of ws) w.resolve();
      });
      // The status comes last, after every acknowledgement.
      call.on('status', (s: CallStatus) => {
        if (this.streamDone) return;
        this.streamDone = true;
        let error = s.code === grpc.status.OK ? undefined : this.conn.mapError(s);
        if (!error && this.unacked) error = new KeepError('INTERNAL', `keepd ended the upload stream with ${this.unacked} blobs unacknowledged`);
        if (error) {
          this.fail(error);
          reject(error);
        } else {
          resolve();
        }
      });
    });
    this.finished.catch(() => undefined);
    return call;
  }

  private drain(): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise<void>((resolve, reject) => this.drainWaiters.push({ resolve, reject }));
  }

  private onAck(r: UploadAck): void {
    // Acks come in write order; look further only if the server reorders.
    let i = this.ackHead;
    if (i >= this.acks.length || !this.acks[i].id.equals(r.id)) {
      i = this.acks.findIndex((a, j) => j >= this.ackHead && a.id.equals(r.id));
      if (i < 0) {
        this.fail(new KeepError('INTERNAL', `keepd acknowledged blob ${toHex(r.id)}, which was not sent`));
        this.call?.cancel();
        return;
      }
      // Out of order: swap it to the head, then take the head.
      [this.acks[i], this.acks[this.ackHead]] = [this.acks[this.ackHead], this.acks[i]];
    }
    const { put } = this.acks[this.ackHead++];
    if (this.ackHead > 1024 && this.ackHead * 2 > this.acks.length) {
      this.acks = this.acks.slice(this.ackHead);
      this.ackHead = 0;
    }
    put.newBytes += r.newBytes;
    if (--put.remaining === 0) this.settle(put);
  }

  private settle(put: PutState, error?: KeepError): void {
    if (put.settled) return;
    put.settled = true;
    if (error) put.reject(error);
    else put.resolve(put.newBytes);
  }

  /** The stream broke: every put waiting on it fails with the same error. */
  private fail(e: KeepError): void {
    this.failure ??= e;
    const acks = this.acks.slice(this.ackHead);
    this.acks = [];
    this.ackHead = 0;
    for (const a of acks) this.settle(a.put, this.failure);
    const ws = this.drainWaiters;
    this.drainWaiters = [];
    for (const w of ws) w.reject(this.failure);
  }
}
