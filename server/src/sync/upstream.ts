import fs from 'node:fs';
import { create } from '@bufbuild/protobuf';
import * as grpc from '@grpc/grpc-js';
import { KeepError, KeyFile, parseKeyFile, parseRepoConfig, RepoConfig, Snapshot as CoreSnapshot } from '@keep/core';
import {
  bearerMetadata,
  fromStatus,
  GetAuditHeadRequestSchema,
  GetAuditHeadResponse,
  GetConfigRequestSchema,
  GetConfigResponse,
  GrpcAddress,
  grpcServiceDefinition,
  ListSnapshotsRequestSchema,
  ListSnapshotsResponse,
  ListTokensRequestSchema,
  ListTokensResponse,
  MAX_MESSAGE_BYTES,
  parseGrpcAddress,
  PROTOCOL_VERSION,
  ReadBlobsRequestSchema,
  ReadBlobsResponse,
  ReportReplicaRequestSchema,
  RepositoryService,
  snapshotFromWire,
  tlsChannelCredentials,
  WatchCommitsRequestSchema,
  WatchCommitsResponse,
} from '@keep/proto';
import type { TokenRecord } from '../auth/tokens.js';
import { tokenFromWire } from './tokens.js';

const DEF = grpcServiceDefinition(RepositoryService);

/** grpc(s)://HOST:PORT of an upstream keepd; plaintext only to loopback unless `insecure` (before any connection). */
export function parseUpstream(location: string, insecure: boolean): GrpcAddress {
  return parseGrpcAddress(location, insecure, (l) => `--from takes grpc://HOST:PORT or grpcs://HOST:PORT, not ${l}`);
}

/**
 * The replica's view of its primary: a read-only gRPC client (a replica
 * token can do nothing else). Everything it receives is ciphertext.
 */
export class Upstream {
  private readonly client: grpc.Client;
  readonly address: string;

  constructor(
    readonly location: string,
    private readonly token: string | undefined,
    caFile?: string,
    insecure = false,
  ) {
    const m = parseUpstream(location, insecure);
    this.address = m.address;
    const creds = m.secure ? tlsChannelCredentials(caFile ? fs.readFileSync(caFile) : null) : grpc.credentials.createInsecure();
    const Client = grpc.makeGenericClientConstructor(DEF, 'RepositoryService');
    this.client = new Client(this.address, creds, { 'grpc.max_receive_message_length': MAX_MESSAGE_BYTES, 'grpc.max_send_message_length': MAX_MESSAGE_BYTES });
  }

  private md(): grpc.Metadata {
    return bearerMetadata(this.token);
  }

  private error(e: unknown): KeepError {
    const err = e as grpc.ServiceError;
    if (typeof err?.code !== 'number') return e instanceof KeepError ? e : new KeepError('INTERNAL', String((e as Error)?.message ?? e));
    const k = fromStatus(err.code, err.details || err.message);
    return k.code === 'UNAVAILABLE' ? new KeepError('UNAVAILABLE', `cannot reach upstream ${this.location}: ${k.message}`) : k;
  }

  private unary<Res>(method: keyof typeof DEF, req: unknown): Promise<Res> {
    const d = DEF[method];
    return new Promise((resolve, reject) =>
      this.client.makeUnaryRequest(d.path, d.requestSerialize, d.responseDeserialize as (b: Buffer) => Res, req, this.md(), {}, (err, res) =>
        err || res === undefined ? reject(this.error(err)) : resolve(res as Res),
      ),
    );
  }

  async config(): Promise<{ config: RepoConfig; configJson: string; keys: KeyFile[] }> {
    const r = await this.unary<GetConfigResponse>('getConfig', create(GetConfigRequestSchema, { protocolVersion: PROTOCOL_VERSION }));
    // A damaged key file (an older primary sends every file of keys/) is not copied: unlock would skip it anyway.
    const keys = r.keyFilesJson.flatMap((k) => {
      try {
        return [parseKeyFile(k)];
      } catch {
        return [];
      }
    });
    return { config: parseRepoConfig(r.configJson, `the config of ${this.location}`), configJson: r.configJson, keys };
  }

  /** The upstream's token records (hashes), revocations included; undefined from a keepd that predates ListTokens. */
  async tokens(): Promise<TokenRecord[] | undefined> {
    try {
      const r = await this.unary<ListTokensResponse>('listTokens', create(ListTokensRequestSchema, {}));
      return r.tokens.map(tokenFromWire);
    } catch (e) {
      if (e instanceof KeepError && e.code === 'INTERNAL' && /implement/i.test(e.message)) return undefined;
      throw e;
    }
  }

  async snapshots(source?: string): Promise<CoreSnapshot[]> {
    const r = await this.unary<ListSnapshotsResponse>('listSnapshots', create(ListSnapshotsRequestSchema, { source: source ?? '' }));
    return r.snapshots.map(snapshotFromWire);
  }

  /** Stream blobs in request order; `onBlob` is awaited per blob (back-pressure). */
  /** `source`: the source whose own bytes to fetch (its copy of a blob another source stored first). */
  readBlobs(ids: Buffer[], onBlob: (id: Buffer, data: Buffer, storageHash: Buffer) => Promise<void>, source = ''): Promise<void> {
    const d = DEF.readBlobs;
    const call = this.client.makeServerStreamRequest(d.path, d.requestSerialize, d.responseDeserialize as (b: Buffer) => ReadBlobsResponse, create(ReadBlobsRequestSchema, { ids, source }), this.md(), {});
    return new Promise((resolve, reject) => {
      let chain = Promise.resolve();
      let failed = false;
      const fail = (e: unknown) => {
        if (failed) return;
        failed = true;
        call.cancel();
        reject(e instanceof KeepError ? e : this.error(e));
      };
      call.on('data', (r: ReadBlobsResponse) => {
        call.pause();
        chain = chain
          .then(() => onBlob(Buffer.from(r.id), Buffer.from(r.data.buffer, r.data.byteOffset, r.data.byteLength), Buffer.from(r.storageHash)))
          .then(() => void call.resume(), fail);
      });
      call.on('error', fail);
      call.on('end', () => void chain.then(() => !failed && resolve(), fail));
    });
  }

  /** Tell the primary which snapshots this replica now holds (synchronous mode and lag on the primary). */
  /** The upstream's audit head checkpoint (GetAuditHead; an older keepd answers UNIMPLEMENTED). */
  async auditHead(): Promise<{ seq: number; hash: string; time: string }> {
    const r = await this.unary<GetAuditHeadResponse>('getAuditHead', create(GetAuditHeadRequestSchema, {}));
    return { seq: Number(r.seq), hash: r.hash, time: r.serverTime };
  }

  async report(replicaId: string, snapshotIds: string[], newestTime: string): Promise<void> {
    await this.unary('reportReplica', create(ReportReplicaRequestSchema, { replicaId, snapshotIds, newestTime }));
  }

  /** Call `onCommit` for each snapshot the primary commits, until the stream ends (resolves) or fails (rejects). */
  watchCommits(onCommit: (snapshotId: string) => void): { done: Promise<void>; cancel: () => void } {
    const d = DEF.watchCommits;
    const call = this.client.makeServerStreamRequest(d.path, d.requestSerialize, d.responseDeserialize as (b: Buffer) => WatchCommitsResponse, create(WatchCommitsRequestSchema, {}), this.md(), {});
    const done = new Promise<void>((resolve, reject) => {
      call.on('data', (e: WatchCommitsResponse) => onCommit(e.snapshotId));
      call.on('error', (e: grpc.ServiceError) => (e.code === grpc.status.CANCELLED ? resolve() : reject(this.error(e))));
      call.on('end', () => resolve());
    });
    return { done, cancel: () => call.cancel() };
  }

  close(): void {
    this.client.close();
  }
}
