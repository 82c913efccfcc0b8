/**
 * The wire contract's rules in packages/proto beside the codecs (those are
 * tested in backup-wire and stream-wire): snapshot records both ways through
 * protobuf-es's bytes, the KeepError <-> gRPC status map, the varints the
 * hand-made encoders write, keepd addresses and how a token travels.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { KeepError, KeepErrorCode } from '@keep/core';
import { bearerMetadata, bearerToken, fromGrpcError, fromStatus, parseGrpcAddress, ReadBlobsRequestSchema, snapshotFromWire, snapshotToWire, SnapshotSchema, toStatus, varintSize, writeVarint } from '@keep/proto';
import { wire } from './keepd-harness.js';

let protobuf: any;
let grpc: any;
beforeAll(async () => {
  ({ protobuf, grpc } = await wire());
});

const stats = { files: 3, dirs: 1, bytes: 2 ** 40 + 7, files_new: 1, files_changed: 1, files_unmodified: 1, bytes_read: 10, bytes_sent: 5, chunks_new: 2, duration_s: 1.25 };

describe('snapshot records on the wire', () => {
  it('come back as they went, through the bytes protobuf-es writes', () => {
    const full = { id: 'a'.repeat(32), source: 'src', host: 'h', time: '2026-01-02T03:04:05.006Z', parent: 'b'.repeat(32), root: 'c'.repeat(64), tags: ['x', 'y'], tier: 'critical', stats, mac: 'd'.repeat(64), server_time: '2026-01-02T03:04:06.000Z' };
    const bare = { id: 'e'.repeat(32), source: 'src', host: 'h', time: '2026-01-02T03:04:05.006Z', root: 'c'.repeat(64), tags: [], stats };
    for (const s of [full, bare]) {
      const bytes = protobuf.toBinary(SnapshotSchema, snapshotToWire(s));
      expect(snapshotFromWire(protobuf.fromBinary(SnapshotSchema, bytes))).toEqual(s);
    }
    // An agent's commit: no server_time (keepd's to set), counts as uint64.
    const w = snapshotToWire({ ...bare, id: undefined, stats: { ...stats, files: -1, dirs: 2.6 } });
    expect([w.id, w.serverTime, w.stats!.files, w.stats!.dirs]).toEqual(['', '', 0n, 3n]);
    // A record without stats reads as zeros.
    expect(snapshotFromWire(protobuf.create(SnapshotSchema, { id: 'f', root: 'c'.repeat(64) })).stats.files).toBe(0);
  });
});

describe('KeepError <-> gRPC status', () => {
  it('maps every code there and back, two codes folding into their neighbours', () => {
    const codes: KeepErrorCode[] = ['WRONG_PASSWORD', 'NOT_A_REPOSITORY', 'ALREADY_EXISTS', 'NOT_FOUND', 'CORRUPT', 'INCOMPLETE', 'INVALID_ARGUMENT', 'PERMISSION_DENIED', 'UNAUTHENTICATED', 'UNAVAILABLE', 'LOCKED', 'RESOURCE_EXHAUSTED', 'INTERNAL'];
    for (const c of codes) {
      const s = toStatus(new KeepError(c, 'why'));
      expect(s.details).toBe('why');
      const back = fromStatus(s.code, s.details).code;
      expect(back).toBe(c === 'WRONG_PASSWORD' ? 'PERMISSION_DENIED' : c === 'NOT_A_REPOSITORY' ? 'INCOMPLETE' : c);
      expect(fromGrpcError({ code: s.code, details: 'why' }).code).toBe(back);
    }
    expect(toStatus(new Error('boom'))).toEqual({ code: grpc.status.INTERNAL, details: 'internal error: boom' });
    expect(fromStatus(grpc.status.OUT_OF_RANGE, 'x').code).toBe('INVALID_ARGUMENT');
    expect(fromStatus(grpc.status.DEADLINE_EXCEEDED, 'x').code).toBe('UNAVAILABLE');
    expect(fromStatus(grpc.status.UNIMPLEMENTED, 'x').code).toBe('INTERNAL');
    const down = fromGrpcError({ code: grpc.status.UNAVAILABLE, details: 'No connection established. Resolution note: ' }, '127.0.0.1:1');
    expect(down.message).toBe('cannot reach keepd at 127.0.0.1:1: No connection established.');
  });
});

describe('varints of the hand-made encoders', () => {
  it('are the bytes protobuf-es writes, and as long as varintSize says', () => {
    for (const n of [0, 1, 127, 128, 16_383, 16_384, 2 ** 21 - 1, 2 ** 21, 2 ** 28 - 1, 2 ** 28, 2 ** 32 - 1]) {
      const b = new Uint8Array(5);
      const end = writeVarint(b, 0, n);
      expect(end).toBe(varintSize(n));
      // ReadBlobsRequest.max_message_bytes (uint32) alone: its key byte, then the varint (proto3 leaves 0 out).
      const ref = Buffer.from(protobuf.toBinary(ReadBlobsRequestSchema, protobuf.create(ReadBlobsRequestSchema, { maxMessageBytes: n }))).subarray(1);
      expect(Buffer.from(b.subarray(0, end))).toEqual(n === 0 ? Buffer.from([0]) : ref);
    }
  });
});

describe('keepd addresses', () => {
  it('grpc:// and grpcs:// with a host and a port; plaintext only to loopback unless insecure', () => {
    expect(parseGrpcAddress('grpc://127.0.0.1:7420')).toEqual({ secure: false, address: '127.0.0.1:7420' });
    expect(parseGrpcAddress('grpcs://keep.example.org:443/')).toEqual({ secure: true, address: 'keep.example.org:443' });
    expect(parseGrpcAddress('grpc://[::1]:1')).toEqual({ secure: false, address: '[::1]:1' });
    expect(parseGrpcAddress('grpc://backup_host:7420', true).address).toBe('backup_host:7420');
    for (const bad of ['http://h:1', 'grpc://h', 'grpc://h:0', 'grpc://h:65536', 'grpc://h:1/x']) expect(() => parseGrpcAddress(bad)).toThrow(/not a keepd address/);
    expect(() => parseGrpcAddress('grpc://h', false, (l) => `--from takes grpc://HOST:PORT, not ${l}`)).toThrow('--from takes grpc://HOST:PORT, not grpc://h');
    expect(() => parseGrpcAddress('grpc://10.0.0.1:7420')).toThrow(/refusing plaintext/);
  });
});

describe('credentials', () => {
  it('travel as "authorization: Bearer <token>" metadata, read back as sent', () => {
    const md = bearerMetadata('k-123');
    expect(md.get('authorization')).toEqual(['Bearer k-123']);
    expect(bearerToken(md)).toBe('k-123');
    expect(bearerToken(bearerMetadata(undefined))).toBeUndefined();
  });
});
