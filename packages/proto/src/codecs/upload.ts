import { BLOB_ROOM, ID_SIZE, KeepError, SealedBlob, storageHash } from '@keep/core';
import { FRAME_PREFIX, writeFramePrefix } from './frame.js';
import { varintSize, writeVarint } from './varint.js';
import { ackBodySize, decodeUploadBlob, ProtoReader, UploadBlobFields, writeAckBody, writeBlobFields } from './upload-batch.js';

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
    writeBlobFields(msg, at, 2, b.id, n, hash);
    return framed;
  }
}

export interface UploadAck {
  id: Buffer;
  stored: boolean;
  newBytes: number;
}

/** An UploadRequest as keepd reads it: the bytes fields are views into the message, as protobuf-es makes them. */
export interface UploadRequestFields {
  sessionId: string;
  id: Uint8Array;
  data: Uint8Array;
  storageHash: Uint8Array;
  /** a batch (issue 21: field 5), else empty: fields 2-4 carry the one blob */
  blobs: UploadBlobFields[];
}

const malformed = (why: string) => new Error(why);

/**
 * Decode an UploadRequest (keepd, once per upload message: protobuf-es
 * reflects over the schema for each). Unknown fields are skipped, a repeated
 * field's last value counts, as in protobuf; a malformed message throws.
 */
export function decodeUploadRequest(b: Uint8Array): UploadRequestFields {
  const r = new ProtoReader(Buffer.from(b.buffer, b.byteOffset, b.byteLength), malformed);
  const out: UploadRequestFields = { sessionId: '', id: EMPTY, data: EMPTY, storageHash: EMPTY, blobs: [] };
  while (!r.done) {
    const key = r.varint();
    const field = Math.floor(key / 8);
    const wire = key & 7;
    if (field === 0) throw malformed('field number 0');
    if (wire === 2) {
      const v = r.bytes(field);
      if (field === 1) out.sessionId = v.toString('utf8');
      else if (field === 2) out.id = v;
      else if (field === 3) out.data = v;
      else if (field === 4) out.storageHash = v;
      else if (field === 5) out.blobs.push(decodeUploadBlob(v));
      continue;
    }
    if (field <= 5) throw malformed(`field ${field} has wire type ${wire}`);
    r.skip(wire);
  }
  return out;
}

const EMPTY = new Uint8Array(0);

/**
 * Encode an UploadResponse (keepd's ack of a single uploaded blob), byte for
 * byte what protobuf-es writes (defaults left out): `create` + `toBinary`
 * reflected over the schema for each of thousands of small blobs.
 */
export function encodeUploadAck(a: UploadAck): Buffer {
  const out = Buffer.allocUnsafe(ackBodySize(a));
  writeAckBody(out, 0, a);
  return out;
}

const badAck = () => new KeepError('INTERNAL', 'keepd sent a malformed upload acknowledgement');

/** Decode an UploadResponse of a single blob; unknown fields are skipped (fields are only ever added). */
export function decodeUploadAck(b: Buffer): UploadAck {
  return decodeAckFields(new ProtoReader(b, badAck), undefined);
}

/** Decode an UploadResponse: the acks of a batch (field 4), or the one ack of fields 1-3. */
export function decodeUploadAcks(b: Buffer): UploadAck[] {
  const batch: UploadAck[] = [];
  const one = decodeAckFields(new ProtoReader(b, badAck), batch);
  return batch.length ? batch : [one];
}

/** An ack's fields 1-3 from `r` to its end; field 4 entries (a batch's acks) go to `batch`. */
function decodeAckFields(r: ProtoReader, batch: UploadAck[] | undefined): UploadAck {
  let id: Buffer = Buffer.alloc(0);
  let stored = false;
  let newBytes = 0;
  while (!r.done) {
    const key = r.varint();
    const field = Math.floor(key / 8);
    const wire = key & 7;
    if (wire === 0) {
      const v = r.varint();
      if (field === 2) stored = v !== 0;
      else if (field === 3) newBytes = v;
    } else if (wire === 2) {
      const v = r.bytes(field);
      if (field === 1) id = v;
      else if (field === 4 && batch) batch.push(decodeAckFields(new ProtoReader(v, badAck), undefined));
    } else r.skip(wire);
  }
  return { id, stored, newBytes };
}
