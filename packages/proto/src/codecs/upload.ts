import { BLOB_ROOM, ID_SIZE, KeepError, SealedBlob, storageHash } from '@keep/core';
import { FRAME_PREFIX, writeFramePrefix } from './frame.js';
import { varintSize, writeVarint } from './varint.js';

/*
 * keep.v1 UploadRequest / UploadResponse (proto/keep/v1/repository.proto),
 * encoded by hand for the upload stream: protobuf-es copies each blob twice
 * (into its writer, then into a Buffer) and reflects over the schema for
 * every message. Here the fields, and the gRPC frame prefix before them, are
 * written around the blob in the room the SealPool left for them, so the
 * message costs no copy of the blob at all (agent/src/repo/remote-stream.ts writes it as it is).
 * The bytes are exactly protobuf's: fields in number order, lengths as varints.
 *
 *   UploadRequest  { 1: session_id string, 2: id bytes, 3: data bytes, 4: storage_hash bytes }
 *   UploadResponse { 1: id bytes, 2: stored bool, 3: new_bytes uint64 }
 */

/** Encodes UploadRequests for one session. */
export class UploadEncoder {
  private readonly session: Buffer;

  constructor(sessionId: string) {
    this.session = Buffer.from(sessionId, 'utf8');
  }

  /** The encoded UploadRequest for `b`. */
  encode(b: SealedBlob): Buffer {
    return this.frame(b).subarray(FRAME_PREFIX);
  }

  /**
   * The UploadRequest for `b` with its gRPC frame prefix, as written to the
   * stream: around the blob, in its own buffer, when it has room; else copied once.
   */
  frame(b: SealedBlob): Buffer {
    if (b.id.length !== ID_SIZE) throw new KeepError('INTERNAL', `blob id of ${b.id.length} bytes`);
    const n = b.bytes.length;
    const hash = b.hash ?? storageHash(b.bytes);
    const head = 1 + varintSize(this.session.length) + this.session.length + 2 + ID_SIZE + 1 + varintSize(n);
    const tail = 2 + ID_SIZE;
    let framed: Buffer;
    if (b.roomy && FRAME_PREFIX + head <= BLOB_ROOM.head && tail <= BLOB_ROOM.tail) {
      framed = Buffer.from(b.bytes.buffer, b.bytes.byteOffset - head - FRAME_PREFIX, FRAME_PREFIX + head + n + tail);
    } else {
      framed = Buffer.allocUnsafe(FRAME_PREFIX + head + n + tail);
      b.bytes.copy(framed, FRAME_PREFIX + head);
    }
    writeFramePrefix(framed, 0, head + n + tail);
    const msg = framed.subarray(FRAME_PREFIX);
    let at = 0;
    msg[at++] = 0x0a;
    at = writeVarint(msg, at, this.session.length);
    at += this.session.copy(msg, at);
    msg[at++] = 0x12;
    msg[at++] = ID_SIZE;
    at += b.id.copy(msg, at);
    msg[at++] = 0x1a;
    writeVarint(msg, at, n);
    at = head + n;
    msg[at++] = 0x22;
    msg[at++] = ID_SIZE;
    hash.copy(msg, at);
    return framed;
  }
}

export interface UploadAck {
  id: Buffer;
  stored: boolean;
  newBytes: number;
}

/** Decode an UploadResponse; unknown fields are skipped (fields are only ever added). */
export function decodeUploadAck(b: Buffer): UploadAck {
  let id: Buffer = Buffer.alloc(0);
  let stored = false;
  let newBytes = 0;
  let at = 0;
  const varint = (): number => {
    let v = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      if (at >= b.length) break;
      const c = b[at++];
      v += (c & 0x7f) * mul;
      if (c < 0x80) return v;
      mul *= 128;
    }
    throw new KeepError('INTERNAL', 'keepd sent a malformed upload acknowledgement');
  };
  while (at < b.length) {
    const key = varint();
    const field = Math.floor(key / 8);
    const wire = key & 7;
    if (wire === 0) {
      const v = varint();
      if (field === 2) stored = v !== 0;
      else if (field === 3) newBytes = v;
    } else if (wire === 2) {
      const len = varint();
      if (at + len > b.length) throw new KeepError('INTERNAL', 'keepd sent a malformed upload acknowledgement');
      if (field === 1) id = b.subarray(at, at + len);
      at += len;
    } else if (wire === 1) at += 8;
    else if (wire === 5) at += 4;
    else throw new KeepError('INTERNAL', 'keepd sent a malformed upload acknowledgement');
  }
  if (at > b.length) throw new KeepError('INTERNAL', 'keepd sent a malformed upload acknowledgement');
  return { id, stored, newBytes };
}
