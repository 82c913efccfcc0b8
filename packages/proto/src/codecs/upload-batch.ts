import { BLOB_ROOM, ID_SIZE, KeepError, SealedBlob, storageHash } from '@keep/core';
import { FRAME_PREFIX, writeFramePrefix } from './frame.js';
import { varintSize, writeVarint } from './varint.js';
import type { UploadAck } from './upload.js';

/*
 * Issue 21: batched uploads. Several blobs in one UploadRequest (field 5,
 * repeated StoredBlob) and their acks in one UploadResponse (field 4,
 * repeated UploadBlobAck), so keepd pays grpc-js's per-message framing once
 * per batch instead of once per blob. Encoded by hand like the single form
 * (upload.ts), byte for byte protobuf's:
 *
 *   UploadRequest  { 1: session_id string, 5: repeated StoredBlob { 1: id, 2: data, 3: storage_hash } }
 *   UploadResponse { 4: repeated UploadBlobAck { 1: id, 2: stored bool, 3: new_bytes uint64 } }
 *
 * The agent writes a batch as pieces, with no copy of any blob: a head (the
 * gRPC frame prefix and the session id), then each blob with its field
 * headers written in the room the SealPool left around it.
 */

/** A piece of a framed batch and, for a blob's piece, what frees the blob once written. */
export interface FramedPiece {
  bytes: Buffer;
  release?: () => void;
}

/** A batched blob (StoredBlob) as keepd reads it: views into the message. */
export interface UploadBlobFields {
  id: Uint8Array;
  data: Uint8Array;
  storageHash: Uint8Array;
}

/** Bytes of a batched blob's body for a blob of `n` bytes. */
const blobBodySize = (n: number): number => 2 + ID_SIZE + 1 + varintSize(n) + n + 2 + ID_SIZE;

/** Bytes `b` takes in a batch (its field 5 entry). */
export function batchEntrySize(b: SealedBlob): number {
  const body = blobBodySize(b.bytes.length);
  return 1 + varintSize(body) + body;
}

/**
 * The UploadRequest carrying `blobs` for `session` (the session id's UTF-8
 * bytes), framed for the stream: its pieces in order, the first one holding
 * the gRPC prefix. Blobs with room around them are framed in place.
 */
export function frameUploadBatch(session: Buffer, blobs: SealedBlob[]): FramedPiece[] {
  const headLen = 1 + varintSize(session.length) + session.length;
  let total = headLen;
  for (const b of blobs) total += batchEntrySize(b);
  const head = Buffer.allocUnsafe(FRAME_PREFIX + headLen);
  writeFramePrefix(head, 0, total);
  let at = FRAME_PREFIX;
  head[at++] = 0x0a;
  at = writeVarint(head, at, session.length);
  session.copy(head, at);
  const pieces: FramedPiece[] = [{ bytes: head }];
  for (const b of blobs) pieces.push({ bytes: frameBlob(b), release: b.release });
  return pieces;
}

/** One blob's field 5 entry: in its own buffer's room when it has some, else copied once. */
function frameBlob(b: SealedBlob): Buffer {
  if (b.id.length !== ID_SIZE) throw new KeepError('INTERNAL', `blob id of ${b.id.length} bytes`);
  const n = b.bytes.length;
  const hash = b.hash ?? storageHash(b.bytes);
  const body = blobBodySize(n);
  const head = 1 + varintSize(body) + 2 + ID_SIZE + 1 + varintSize(n);
  const tail = 2 + ID_SIZE;
  let out: Buffer;
  if (b.roomy && head <= BLOB_ROOM.head && tail <= BLOB_ROOM.tail) {
    out = Buffer.from(b.bytes.buffer, b.bytes.byteOffset - head, head + n + tail);
  } else {
    out = Buffer.allocUnsafe(head + n + tail);
    b.bytes.copy(out, head);
  }
  out[0] = 0x2a;
  writeBlobFields(out, writeVarint(out, 1, body), 1, b.id, n, hash);
  return out;
}

/**
 * A blob's three fields, numbered from `field` (id, data, storage hash), at
 * `at` in `out`, around the data already in place after the data field's
 * header (both forms of UploadRequest are written so).
 */
export function writeBlobFields(out: Buffer, at: number, field: number, id: Buffer, n: number, hash: Buffer): void {
  out[at++] = (field << 3) | 2;
  out[at++] = ID_SIZE;
  at += id.copy(out, at);
  out[at++] = ((field + 1) << 3) | 2;
  at = writeVarint(out, at, n) + n;
  out[at++] = ((field + 2) << 3) | 2;
  out[at++] = ID_SIZE;
  hash.copy(out, at);
}

/** A cursor over protobuf bytes; `fail` makes the error each caller's. */
export class ProtoReader {
  at = 0;

  constructor(
    readonly buf: Buffer,
    private readonly fail: (why: string) => Error,
  ) {}

  get done(): boolean {
    return this.at >= this.buf.length;
  }

  varint(): number {
    let v = 0;
    let mul = 1;
    for (let i = 0; i < 10 && this.at < this.buf.length; i++) {
      const c = this.buf[this.at++];
      v += (c & 0x7f) * mul;
      if (c < 0x80) return v;
      mul *= 128;
    }
    throw this.fail('premature end or an over-long varint');
  }

  /** A length-delimited field's bytes (a view). */
  bytes(field: number): Buffer {
    const len = this.varint();
    if (len > this.buf.length - this.at) throw this.fail(`field ${field} runs past the end`);
    const v = this.buf.subarray(this.at, this.at + len);
    this.at += len;
    return v;
  }

  /** Skip a field of wire type `wire` that is not a length-delimited one. */
  skip(wire: number): void {
    if (wire === 0) this.varint();
    else if (wire === 1) this.at += 8;
    else if (wire === 5) this.at += 4;
    else throw this.fail(`wire type ${wire}`);
    if (this.at > this.buf.length) throw this.fail('premature end');
  }
}

/** keepd: one blob (StoredBlob) of a batch (unknown fields skipped, the last of a repeated one counts). */
export function decodeUploadBlob(b: Buffer): UploadBlobFields {
  const r = new ProtoReader(b, (why) => new Error(`a batched blob: ${why}`));
  const out: UploadBlobFields = { id: EMPTY, data: EMPTY, storageHash: EMPTY };
  while (!r.done) {
    const key = r.varint();
    const field = Math.floor(key / 8);
    const wire = key & 7;
    if (field === 0) throw new Error('a batched blob: field number 0');
    if (wire === 2) {
      const v = r.bytes(field);
      if (field === 1) out.id = v;
      else if (field === 2) out.data = v;
      else if (field === 3) out.storageHash = v;
    } else if (field <= 3) throw new Error(`a batched blob: field ${field} has wire type ${wire}`);
    else r.skip(wire);
  }
  return out;
}

const EMPTY = new Uint8Array(0);

/** keepd: the one UploadResponse acknowledging a batch, byte for byte what protobuf-es writes. */
export function encodeUploadBatchAck(acks: UploadAck[]): Buffer {
  let total = 0;
  const sizes = acks.map((a) => {
    const n = ackBodySize(a);
    total += 1 + varintSize(n) + n;
    return n;
  });
  const out = Buffer.allocUnsafe(total);
  let at = 0;
  acks.forEach((a, i) => {
    out[at++] = 0x22;
    at = writeVarint(out, at, sizes[i]);
    at = writeAckBody(out, at, a);
  });
  return out;
}

/** Bytes of an ack's fields (defaults left out, as protobuf writes them). */
export const ackBodySize = (a: UploadAck): number => 1 + varintSize(a.id.length) + a.id.length + (a.stored ? 2 : 0) + (a.newBytes > 0 ? 1 + varintSize(a.newBytes) : 0);

/** Write an ack's fields at `at`; returns the offset after them. */
export function writeAckBody(out: Buffer, at: number, a: UploadAck): number {
  out[at++] = 0x0a;
  at = writeVarint(out, at, a.id.length);
  at += a.id.copy(out, at);
  if (a.stored) (out[at++] = 0x10), (out[at++] = 1);
  if (a.newBytes > 0) (out[at++] = 0x18), (at = writeVarint(out, at, a.newBytes));
  return at;
}
