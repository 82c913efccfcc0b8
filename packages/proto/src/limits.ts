import { MAX_BLOB_SIZE } from '@keep/core';

/*
 * Sizes both sides of keep.v1 agree on.
 */

const MiB = 1024 * 1024;

/** Ids per Offer or ReadBlobs request; more is a malformed request, not a slow one (keepd refuses it; the agent batches by it). */
export const MAX_IDS_PER_REQUEST = 4096;

/** Largest ReadBlobs message of several blobs a client may ask for (max_message_bytes): keepd sends no larger ones. */
export const MAX_READ_MESSAGE_BYTES = 16 * MiB;

/**
 * Largest gRPC message keepd takes or sends: a max-size blob (a chunk, or the
 * tree node of a very large directory) plus the Upload or ReadBlobs framing
 * around it. grpc-js buffers a whole message before the handler sees it, so
 * this is what one call can make keepd hold; calls without a valid token are
 * refused from their headers, before any message is read (server/src/net/auth-first.ts).
 */
export const MAX_MESSAGE_BYTES = MAX_BLOB_SIZE + 64 * 1024;

/** Largest message the agent accepts or sends: room above MAX_MESSAGE_BYTES, a max-size blob travels alone. */
export const AGENT_MAX_MESSAGE_BYTES = 160 * MiB;

/**
 * Blobs per batched UploadRequest keepd takes (issue 21); more is a malformed
 * request. The agent sends at most UPLOAD_BATCH_BLOBS.
 */
export const MAX_UPLOAD_BATCH_BLOBS = 1024;

/** The agent's batches: at most this many blobs... */
export const UPLOAD_BATCH_BLOBS = 256;
/** ...or this many bytes of blobs (a larger blob travels alone). */
export const UPLOAD_BATCH_BYTES = 1024 * 1024;
