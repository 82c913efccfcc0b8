import { ID_SIZE, KeepError, MAX_BLOB_SIZE, NewBlob } from '@keep/core';
import { MAX_UPLOAD_BATCH_BLOBS, UploadRequestFields } from '@keep/proto';

const asBuffer = (u: Uint8Array): Buffer => Buffer.from(u.buffer, u.byteOffset, u.byteLength);

/** One blob's fields checked (`which` names it in a batch's error); views into the message, not copies. */
function checkBlob(b: { id: Uint8Array; data: Uint8Array; storageHash: Uint8Array }, which: string): NewBlob {
  if (b.id.length !== ID_SIZE) throw new KeepError('INVALID_ARGUMENT', `${which}blob id must be ${ID_SIZE} bytes`);
  if (b.data.length > MAX_BLOB_SIZE) throw new KeepError('INVALID_ARGUMENT', `${which}blob over ${MAX_BLOB_SIZE} bytes`);
  if (b.storageHash.length !== ID_SIZE) throw new KeepError('INVALID_ARGUMENT', `${which}upload needs the blob storage hash`);
  return { id: asBuffer(b.id), stored: asBuffer(b.data), expectHash: asBuffer(b.storageHash) };
}

/**
 * The blobs of one UploadRequest: its single blob (fields 2-4, what every
 * agent sends), or its batch (issue 21: field 5). Every blob of a batch is
 * checked against the single blob's limits before any is stored, and the
 * batch against MAX_UPLOAD_BATCH_BLOBS (its bytes are bounded by the message
 * size limit, which grpc-js enforces): a batch refused is refused whole.
 */
export function uploadedBlobs(req: UploadRequestFields): { blobs: NewBlob[]; batched: boolean } {
  if (req.blobs.length === 0) return { blobs: [checkBlob(req, '')], batched: false };
  if (req.id.length || req.data.length || req.storageHash.length) throw new KeepError('INVALID_ARGUMENT', 'an UploadRequest carries one blob or a batch of blobs, not both');
  if (req.blobs.length > MAX_UPLOAD_BATCH_BLOBS) throw new KeepError('INVALID_ARGUMENT', `an upload batch of ${req.blobs.length} blobs is over the limit of ${MAX_UPLOAD_BATCH_BLOBS}`);
  return { blobs: req.blobs.map((b, i) => checkBlob(b, `batched blob ${i}: `)), batched: true };
}
