import { EventEmitter } from 'node:events';
import http2 from 'node:http2';
import grpc from '@grpc/grpc-js';
import { AUTHORIZATION, bearerValue, FrameSplitter, KEEPALIVE_TIME_MS, KEEPALIVE_TIMEOUT_MS, MessageSink } from '@keep/proto';

/*
 * The bulk streams of keep.v1 (Upload, ReadBlobs) over an HTTP/2 session of
 * their own, beside grpc-js's channel (which keeps every unary call).
 *
 * The bytes on the wire are gRPC's: a POST to /keep.v1.RepositoryService/<Method>
 * with content-type application/grpc, each message prefixed by a flag byte
 * (0: not compressed) and its length (u32 BE), the status in trailers
 * (grpc-status, grpc-message). keepd cannot tell these calls from grpc-js's.
 *
 * Why not grpc-js: it copies every message it sends into a buffer of its own
 * (the frame prefix in front), and gathers every message it receives from
 * the socket's chunks before handing it over. Those buffers live as long as
 * HTTP/2 flow control makes them wait, long enough for V8 to move them to its
 * old generation, where they wait for a full collection: tens of MiB of an
 * agent's peak memory. Here an upload message is written from the blob's own
 * buffer (the prefix goes in the room before it) and received bytes go to
 * the caller chunk by chunk, as they arrive (packages/proto/src/codecs/read-blobs-parse.ts copies each blob
 * straight into a buffer of its own), so nothing outlives its use.
 */

/** A call's outcome, shaped as grpc-js reports one (remote.ts maps it with fromGrpcError). */
export interface CallStatus {
  code: number;
  details: string;
}

/** HTTP statuses a server may answer instead of gRPC, mapped as gRPC specifies (and grpc-js does). */
function httpStatusCode(status: number): number {
  switch (status) {
    case 400:
      return grpc.status.INTERNAL;
    case 401:
      return grpc.status.UNAUTHENTICATED;
    case 403:
      return grpc.status.PERMISSION_DENIED;
    case 404:
      return grpc.status.UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504:
      return grpc.status.UNAVAILABLE;
    default:
      return grpc.status.UNKNOWN;
  }
}

function decodeMessage(v: string | string[] | undefined): string {
  const s = Array.isArray(v) ? v.join(',') : (v ?? '');
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/**
 * One call. Events: 'status' (CallStatus, exactly once, last); 'drain' (the
 * stream takes writes again). Received messages go to the sink given to
 * StreamSession.call.
 */
export class StreamCall extends EventEmitter {
  private done = false;

  constructor(
    private readonly req: http2.ClientHttp2Stream,
    sink: MessageSink,
    maxLength: number,
    onDone: () => void,
  ) {
    super();
    const frames = new FrameSplitter(sink, maxLength);
    let status: CallStatus | undefined;
    const fromHeaders = (h: http2.IncomingHttpHeaders): CallStatus | undefined =>
      h['grpc-status'] === undefined ? undefined : { code: Number(h['grpc-status']), details: decodeMessage(h['grpc-message']) };
    // A failure status is final even while this side still sends: keepd stopped reading, so waiting for the
    // stream to close (our side ending) would wait for a drain that never comes.
    const failed = () => {
      if (!status || status.code === grpc.status.OK) return;
      this.finish(status);
      req.close(http2.constants.NGHTTP2_CANCEL);
    };
    req.on('response', (h) => {
      const http = Number(h[':status']);
      // A trailers-only response carries the status in its headers.
      status = fromHeaders(h) ?? (http !== 200 ? { code: httpStatusCode(http), details: `keepd answered HTTP ${http}` } : undefined);
      failed();
    });
    req.on('trailers', (h) => {
      status = fromHeaders(h) ?? status;
      failed();
    });
    req.on('data', (chunk: Buffer) => {
      if (this.done) return;
      try {
        frames.push(chunk);
      } catch (e) {
        this.finish({ code: grpc.status.INTERNAL, details: (e as Error).message });
        req.close(http2.constants.NGHTTP2_CANCEL);
      }
    });
    req.on('drain', () => this.emit('drain'));
    req.on('error', (e: NodeJS.ErrnoException) => {
      this.finish({ code: grpc.status.UNAVAILABLE, details: e.message });
    });
    req.on('close', () => {
      onDone();
      if (status && status.code === grpc.status.OK && !frames.idle) status = { code: grpc.status.INTERNAL, details: 'keepd ended the stream inside a message' };
      this.finish(status ?? { code: grpc.status.UNAVAILABLE, details: `the stream closed without a status (HTTP/2 code ${req.rstCode})` });
    });
    // Flowing at once: every byte goes to the sink as it arrives, nothing waits in the stream.
    req.resume();
  }

  private finish(s: CallStatus): void {
    if (this.done) return;
    this.done = true;
    this.emit('status', s);
  }

  /** Send bytes (framed messages); `cb` once the stream no longer needs them. False: wait for 'drain'. */
  write(bytes: Uint8Array, cb?: (e?: Error | null) => void): boolean {
    return this.req.write(bytes, cb);
  }

  /**
   * Send a message written as pieces (a batch: codecs/upload-batch.ts) in one
   * write to the socket; each piece's `release` once the stream no longer
   * needs it. False: wait for 'drain'.
   */
  writePieces(pieces: { bytes: Uint8Array; release?: () => void }[]): boolean {
    this.req.cork();
    let ok = true;
    for (const p of pieces) ok = this.req.write(p.bytes, p.release && (() => p.release!()));
    this.req.uncork();
    return ok;
  }

  /** No more messages from this side. */
  end(bytes?: Uint8Array): void {
    if (bytes) this.req.end(bytes);
    else this.req.end();
  }

  /** Abandon the call (it ends with CANCELLED). */
  cancel(): void {
    if (this.done) return;
    this.finish({ code: grpc.status.CANCELLED, details: 'cancelled by the agent' });
    this.req.close(http2.constants.NGHTTP2_CANCEL);
  }
}

export interface StreamSessionOptions {
  /** host:port */
  address: string;
  secure: boolean;
  /** CA bundle for grpcs (undefined: Node's defaults) */
  ca?: Buffer;
  /** sent as authorization: Bearer on every call */
  token?: string;
}

/**
 * HTTP/2 receive windows for what keepd sends (ReadBlobs): at the protocol's
 * 64 KiB the agent wrote a WINDOW_UPDATE per ~32 KiB restored and keepd could
 * have no more in flight. What is asked for is bounded by the restore's own
 * read-ahead (restorer.ts); keepd's windows: server/src/net/flow-control.ts.
 * The session's is 1 MiB, not 4: at 4 MiB a backup's peak RSS was ~20 MiB
 * higher (193-197 against 170-176 MiB on the real-data set's first
 * generation), for no faster restore (docs/PERFORMANCE.md).
 */
const STREAM_WINDOW_BYTES = 2 * 1024 * 1024;
const SESSION_WINDOW_BYTES = 1024 * 1024;

/** A lazily opened HTTP/2 session to keepd for streaming calls; reopened after it breaks. */
export class StreamSession {
  private session: http2.ClientHttp2Session | undefined;
  private calls = 0;
  private pinger: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly opts: StreamSessionOptions) {}

  private connect(): http2.ClientHttp2Session {
    if (this.session && !this.session.closed && !this.session.destroyed) return this.session;
    const { address, secure, ca } = this.opts;
    const s = http2.connect(`${secure ? 'https' : 'http'}://${address}`, { ...(secure ? { ca } : {}), settings: { initialWindowSize: STREAM_WINDOW_BYTES } });
    s.once('connect', () => s.setLocalWindowSize(SESSION_WINDOW_BYTES));
    // Errors reach the calls on the session (each ends with a status); the session itself must not throw.
    s.on('error', () => undefined);
    s.on('close', () => {
      if (this.session === s) this.session = undefined;
    });
    s.unref();
    this.session = s;
    return s;
  }

  /** Ping while calls are open (as grpc-js's keepalive options: packages/proto/src/keepalive.ts): a keepd that vanished without closing the connection fails them instead of hanging them. */
  private keepalive(on: boolean): void {
    if (!on) {
      clearInterval(this.pinger);
      this.pinger = undefined;
      return;
    }
    if (this.pinger) return;
    this.pinger = setInterval(() => {
      const s = this.session;
      if (!s || s.destroyed) return;
      const timer = setTimeout(() => s.destroy(new Error('keepd did not answer a keepalive ping')), KEEPALIVE_TIMEOUT_MS);
      timer.unref();
      const sent = s.ping((err) => {
        clearTimeout(timer);
        if (err && !s.destroyed) s.destroy(err);
      });
      if (!sent) clearTimeout(timer);
    }, KEEPALIVE_TIME_MS);
    this.pinger.unref();
  }

  /** Start a call of `method` (the RPC's path); responses go to `sink`, messages of at most `maxLength` bytes. */
  call(method: string, sink: MessageSink, maxLength: number): StreamCall {
    if (this.closed) throw new Error('the connection to keepd is closed');
    const s = this.connect();
    const headers: http2.OutgoingHttpHeaders = {
      ':method': 'POST',
      ':path': method,
      'content-type': 'application/grpc',
      te: 'trailers',
      'grpc-accept-encoding': 'identity',
      'user-agent': 'keep-agent',
    };
    if (this.opts.token) headers[AUTHORIZATION] = bearerValue(this.opts.token);
    const req = s.request(headers);
    this.calls++;
    s.ref();
    this.keepalive(true);
    return new StreamCall(req, sink, maxLength, () => {
      if (--this.calls > 0) return;
      this.keepalive(false);
      if (!s.destroyed) s.unref();
    });
  }

  close(): void {
    this.closed = true;
    this.keepalive(false);
    this.session?.close();
    this.session = undefined;
  }
}
