import fs from 'node:fs';
import tls from 'node:tls';
import { create } from '@bufbuild/protobuf';
import grpc from '@grpc/grpc-js';
import {
  CheckOptions,
  CheckReport,
  ForgetOptions,
  ForgetResult,
  Id,
  KeepError,
  KeyFile,
  parseKeyFile,
  parseRepoConfig,
  RepoConfig,
  RunReport,
  DrillReport,
  SealedSnapshot,
  Snapshot,
} from '@keep/core';
import {
  AddKeyRequestSchema,
  AGENT_MAX_MESSAGE_BYTES,
  AddKeyResponse,
  bearerMetadata,
  CheckRequestSchema,
  CheckResponse,
  CLIENT_KEEPALIVE_OPTIONS,
  decodeUploadAcks,
  fromGrpcError,
  GetConfigRequestSchema,
  GetConfigResponse,
  grpcServiceDefinition,
  ListSnapshotsRequestSchema,
  ListSnapshotsResponse,
  MessageSink,
  OpenSessionRequestSchema,
  OpenSessionResponse,
  parseGrpcAddress,
  PROTOCOL_VERSION,
  RemoveKeyRequestSchema,
  RemoveKeyResponse,
  ReportRunsRequestSchema,
  ReportDrillsRequestSchema,
  ReportDrillsResponse,
  drillReportToWire,
  ReportRunsResponse,
  RepositoryService,
  runReportToWire,
  snapshotFromWire,
  StatsRequestSchema,
  StatsResponse,
  tlsChannelCredentials,
  UploadAck,
} from '@keep/proto';
import type { BackupSession, RepoConnection, RepoStats, RunsReported } from './connection.js';
import { RemoteBlobReader, closedError } from './remote-reads.js';
import { remoteForget, remoteReplace } from './remote-retention.js';
import { RemoteSession, SessionTransport } from './remote-session.js';
import { StreamCall, StreamSession } from './remote-stream.js';

/*
 * The agent's side of the keep.v1 wire contract (proto/keep/v1/repository.proto).
 *
 * - Unary calls carry a deadline; streams do not (a restore or an upload may
 *   rightly take hours, and keepalive pings detect a dead peer instead).
 * - Unary calls go through grpc-js; the two bulk streams (Upload, ReadBlobs)
 *   through an HTTP/2 session of their own (remote-stream.ts), where no
 *   message is copied on the way out or gathered on the way in.
 * - Uploads use one long-lived bidi stream per session (remote-session.ts). The server acknowledges
 *   every UploadRequest, in the order written, once the blob is verified and
 *   written; a put() resolves when all of its blobs are acknowledged. Upload
 *   messages are encoded by hand around each blob, in the room before and
 *   after it (packages/proto/src/codecs/upload.ts), and written from the blob's own buffer.
 * - getBlob() calls are batched into ReadBlobs streams (remote-reads.ts; ids asked for in the
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
/** Deadline of ReportRuns. */
const REPORT_DEADLINE_MS = 30_000;
/** Largest upload acknowledgement accepted (an id, a flag and a count per blob: ~45 KiB for a batch of MAX_UPLOAD_BATCH_BLOBS). */
const MAX_ACK_BYTES = 256 * 1024;

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

/** A repository served by keepd, reached over gRPC. */
export class RemoteConnection implements RepoConnection, SessionTransport {
  readonly address: string;
  readonly secure: boolean;
  private readonly client: grpc.Client;
  /** the bulk streams' HTTP/2 session (remote-stream.ts) */
  private readonly streams: StreamSession;
  /** Kept in a private slot so inspecting or serializing the connection cannot show it. */
  readonly #token: string | undefined;
  private meta?: Promise<{ config: RepoConfig; keys: KeyFile[]; damaged: string[]; readOnly: boolean; batchedUploads: boolean }>;

  /** getBlob's batched ReadBlobs calls */
  private readonly reads: RemoteBlobReader;
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
      creds = tlsChannelCredentials(ca);
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
    this.reads = new RemoteBlobReader(this.streams, (e) => this.mapError(e));
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
    if (this.closed) return Promise.reject(closedError());
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
  openUploadStream(onAck: (acks: UploadAck[]) => void): StreamCall {
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
      end: () => onAck(decodeUploadAcks(msg)),
    };
    return this.streams.call(DEF.upload.path, sink, MAX_ACK_BYTES);
  }

  /** Unary call for sessions. */
  call<Res>(method: Method, req: unknown, deadlineMs?: number): Promise<Res> {
    return this.unary<Res>(method, req, deadlineMs);
  }

  // ---- config and keys -----------------------------------------------------

  private loadMeta(): Promise<{ config: RepoConfig; keys: KeyFile[]; damaged: string[]; readOnly: boolean; batchedUploads: boolean }> {
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
        return { config: parseRepoConfig(r.configJson, `the config of ${this.location}`), keys, damaged, readOnly: r.readOnly, batchedUploads: r.batchedUploads };
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
    // Batched uploads (issue 21) only to a keepd that takes them; KEEP_UPLOAD_BATCH=off sends one blob per message, as older agents do.
    const batched = process.env.KEEP_UPLOAD_BATCH !== 'off' && (await this.loadMeta()).batchedUploads;
    return new RemoteSession(this, r.sessionId, batched);
  }

  // ---- restore: batched ReadBlobs (remote-reads.ts) ---------------------------

  readAs(source: string): void {
    this.reads.readSource = source;
  }

  getBlob(id: Id): Promise<Buffer> {
    return this.reads.getBlob(id);
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

  forget(o: ForgetOptions): Promise<ForgetResult> {
    return remoteForget(this, o);
  }

  replaceSnapshots(list: { oldId: string; snapshot: SealedSnapshot }[]): Promise<Snapshot[]> {
    return remoteReplace(this, list);
  }

  /** A short deadline: a report waits in the agent's queue rather than hold up its next run. */
  async reportRuns(reports: RunReport[]): Promise<RunsReported> {
    const r = await this.unary<ReportRunsResponse>('reportRuns', create(ReportRunsRequestSchema, { reports: reports.map(runReportToWire) }), REPORT_DEADLINE_MS);
    return { reported: true, server_time: r.serverTime };
  }

  async reportDrills(drills: DrillReport[]): Promise<RunsReported> {
    const r = await this.unary<ReportDrillsResponse>('reportDrills', create(ReportDrillsRequestSchema, { drills: drills.map(drillReportToWire) }), REPORT_DEADLINE_MS);
    return { reported: true, server_time: r.serverTime };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.reads.close();
    this.streams.close();
    this.client.close();
  }
}
