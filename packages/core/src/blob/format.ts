/**
 * Blob layout — what one stored blob looks like, byte by byte.
 *
 *   offset size  field
 *   0      1     version            = 1
 *   1      1     type               = BlobType (0 data, 1 tree)
 *   2      2     reserved           = 0
 *   4      16    key id             = session salt; the AES key is HKDF(master, salt)
 *   20     12    nonce              = random per blob
 *   32     ...   type-specific body
 *
 * data blob body:  AES-256-GCM(sealed plaintext) || 16-byte tag
 * tree blob body:  u32 BE edge count N
 *                  N x (1 byte edge type || 32-byte id)     -- plaintext edge list
 *                  AES-256-GCM(sealed plaintext) || 16-byte tag  -- the payload
 *
 * sealed plaintext = 1 byte codec (0 raw, 1 zstd) || encoded bytes
 * AAD              = 32-byte blob id || bytes [0, start of ciphertext)
 *                    (binds id, type, key id, nonce and, for trees, the edges)
 *
 * The storage hash of a blob is unkeyed BLAKE3 over all of these bytes.
 */
export { BLOB_VERSION } from '../formats.js';
export const HEADER_SIZE = 32;
export const SALT_OFFSET = 4;
export const SALT_SIZE = 16;
export const NONCE_OFFSET = 20;
export const NONCE_SIZE = 12;
export const TAG_SIZE = 16;
export const EDGE_SIZE = 33;

export const enum BlobType {
  Data = 0,
  Tree = 1,
}

export const BLOB_TYPE_NAMES = ['data', 'tree'] as const;

/** Largest blob accepted anywhere (a max chunk plus tree nodes of very large directories). */
export const MAX_BLOB_SIZE = 128 * 1024 * 1024;

/**
 * Largest plaintext of a tree node: decompression stops there (a data chunk's
 * bound is its repository's max chunk size). Twice the largest blob: a node of
 * a directory of millions of entries compresses well, and the backup refuses
 * to write a node it could not read back (sealTree).
 */
export const MAX_TREE_PLAINTEXT = 256 * 1024 * 1024;
