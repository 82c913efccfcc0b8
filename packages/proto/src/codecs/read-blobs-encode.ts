import { varintSize, writeVarint } from './varint.js';

/*
 * keep.v1 ReadBlobsResponse (proto/keep/v1/repository.proto), encoded by hand
 * for the restore stream: protobuf-es copied each blob into its writer, again
 * when joining the nested StoredBlob, again in finish(), and the grpc-js glue
 * once more into a Buffer; the garbage kept keepd in major GCs every ~50 ms of
 * a restore. Here each blob is copied once, into a buffer of the message's
 * exact size, which the service definition sends as it is (../grpc.ts). The agent
 * decodes these messages in read-blobs-parse.ts.
 * The bytes are exactly protobuf-es's: fields in number order, empty ones left out.
 *
 *   ReadBlobsResponse { 1: id bytes, 2: data bytes, 3: storage_hash bytes, 4: repeated StoredBlob blobs }
 *   StoredBlob        { 1: id bytes, 2: data bytes, 3: storage_hash bytes }
 */

export interface OutgoingBlob {
  id: Uint8Array;
  data: Uint8Array;
  storageHash: Uint8Array;
}

/** A bytes field with its key and length (proto3 leaves an empty one out). */
const fieldSize = (n: number): number => (n === 0 ? 0 : 1 + varintSize(n) + n);

const blobFieldsSize = (b: OutgoingBlob): number => fieldSize(b.id.length) + fieldSize(b.data.length) + fieldSize(b.storageHash.length);

function writeField(out: Buffer, at: number, field: number, bytes: Uint8Array): number {
  if (bytes.length === 0) return at;
  out[at++] = (field << 3) | 2;
  at = writeVarint(out, at, bytes.length);
  out.set(bytes, at);
  return at + bytes.length;
}

function writeBlobFields(out: Buffer, at: number, b: OutgoingBlob): number {
  at = writeField(out, at, 1, b.id);
  at = writeField(out, at, 2, b.data);
  return writeField(out, at, 3, b.storageHash);
}

/** One blob in the response's own id/data/storage_hash (a client that set no max_message_bytes). */
export function encodeReadBlobsSingle(b: OutgoingBlob): Buffer {
  const out = Buffer.allocUnsafe(blobFieldsSize(b));
  writeBlobFields(out, 0, b);
  return out;
}

/** Several blobs, in order, in the response's `blobs`. */
export function encodeReadBlobsMany(blobs: OutgoingBlob[]): Buffer {
  const sizes = blobs.map(blobFieldsSize);
  const out = Buffer.allocUnsafe(sizes.reduce((a, n) => a + 1 + varintSize(n) + n, 0));
  let at = 0;
  blobs.forEach((b, i) => {
    out[at++] = (4 << 3) | 2;
    at = writeVarint(out, at, sizes[i]);
    at = writeBlobFields(out, at, b);
  });
  return out;
}
