/*
 * Protobuf varints for the messages encoded by hand on the bulk paths (the
 * agent's UploadRequest: upload.ts; keepd's ReadBlobsResponse:
 * read-blobs-encode.ts): lengths up to 2^32.
 */

/** Bytes a varint of `n` takes. */
export const varintSize = (n: number): number => (n < 0x80 ? 1 : n < 0x4000 ? 2 : n < 0x200000 ? 3 : n < 0x10000000 ? 4 : 5);

/** Write `n` as a varint at `at`; returns the offset after it. */
export function writeVarint(b: Uint8Array, at: number, n: number): number {
  while (n >= 0x80) {
    b[at++] = (n & 0x7f) | 0x80;
    n >>>= 7;
  }
  b[at++] = n;
  return at;
}
