import crypto from 'node:crypto';

/**
 * Everything is derived from the master key with HKDF-SHA256 and a distinct
 * label, so no two purposes ever share a key.
 *
 * Nonce safety: blobs are sealed with AES-256-GCM under a *session* key,
 * HKDF(master, salt = 16 random bytes chosen per writer session). Each blob
 * gets a fresh random 96-bit nonce. GCM's bound for random nonces is 2^32
 * messages per key (collision chance < 2^-32); a writer rotates its session
 * salt after SESSION_BLOB_LIMIT blobs, far below that, and distinct sessions
 * never share a key (128-bit salts: a collision among 2^32 sessions has
 * probability ~2^-65).
 * The salt travels in each blob header as its "key id".
 */
export interface RepoKeys {
  /** keyed-BLAKE3 key naming data chunks */
  chunkIdKey: Buffer;
  /** keyed-BLAKE3 key naming tree nodes (kept apart from chunk ids) */
  treeIdKey: Buffer;
  /** a keyed repository's chunker gear table (256 entries, chunker.ts): cut points only key holders can compute */
  chunkerGear: Int32Array;
  /** HMAC-SHA256 key authenticating snapshot records (snapshot/auth.ts): the server never has it */
  snapshotMacKey: Buffer;
  /** AES-256-GCM key of a snapshot record's sealed metadata (backed-up paths, user: snapshot/sealed-meta.ts) */
  snapshotMetaKey: Buffer;
  /** HMAC-SHA256 key naming a snapshot's path set for keepd's grouping without showing it the paths (snapshot/sealed-meta.ts) */
  pathsGroupKey: Buffer;
  /** AES-256-GCM key of an agent run's error text and warnings (runs/run-detail.ts): keepd stores them sealed */
  runDetailKey: Buffer;
  /** derive the AES key for a given session salt */
  sealKey(salt: Buffer): Buffer;
}

export const SESSION_SALT_SIZE = 16;
/** Rotate the session salt after this many blobs (2^28, far below GCM's 2^32 random-nonce bound). */
export const SESSION_BLOB_LIMIT = 2 ** 28;

function hkdf(master: Buffer, salt: Buffer, label: string, size = 32): Buffer {
  return Buffer.from(crypto.hkdfSync('sha256', master, salt, Buffer.from(label), size));
}

/** 256 signed 32-bit gear values, read little-endian from HKDF output: the same table on every machine. */
function gearTable(master: Buffer, none: Buffer): Int32Array {
  const bytes = hkdf(master, none, 'keep/v1/chunker-gear', 1024);
  const gear = new Int32Array(256);
  for (let i = 0; i < 256; i++) gear[i] = bytes.readInt32LE(i * 4);
  return gear;
}

export function deriveKeys(master: Buffer): RepoKeys {
  const cache = new Map<string, Buffer>();
  const none = Buffer.alloc(0);
  return {
    chunkIdKey: hkdf(master, none, 'keep/v1/chunk-id'),
    treeIdKey: hkdf(master, none, 'keep/v1/tree-id'),
    chunkerGear: gearTable(master, none),
    snapshotMacKey: hkdf(master, none, 'keep/v1/snapshot-mac'),
    snapshotMetaKey: hkdf(master, none, 'keep/v1/snapshot-meta'),
    pathsGroupKey: hkdf(master, none, 'keep/v1/paths-group'),
    runDetailKey: hkdf(master, none, 'keep/v1/run-detail'),
    sealKey(salt: Buffer): Buffer {
      const k = salt.toString('hex');
      let key = cache.get(k);
      if (!key) {
        key = hkdf(master, salt, 'keep/v1/blob-seal');
        if (cache.size > 1024) cache.clear();
        cache.set(k, key);
      }
      return key;
    },
  };
}
