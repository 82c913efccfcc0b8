import crypto from 'node:crypto';
import { Compression, compressBlob, decompressBlob, decompressBlobInto, MAX_PLAINTEXT } from '../compress.js';
import { corrupt, KeepError } from '../errors.js';
import { ID_SIZE, Id, keyedHash, storageHash, toHex } from '../ids.js';
import { RepoKeys } from '../keys/subkeys.js';
import {
  BLOB_VERSION,
  BlobType,
  EDGE_SIZE,
  HEADER_SIZE,
  MAX_TREE_PLAINTEXT,
  NONCE_OFFSET,
  NONCE_SIZE,
  SALT_OFFSET,
  SALT_SIZE,
  TAG_SIZE,
} from './format.js';
import { fillNonce } from './nonces.js';

export interface Edge {
  type: BlobType;
  id: Id;
}

function header(type: BlobType, salt: Buffer): Buffer {
  const h = Buffer.alloc(HEADER_SIZE);
  h[0] = BLOB_VERSION;
  h[1] = type;
  salt.copy(h, SALT_OFFSET);
  fillNonce(h, NONCE_OFFSET, NONCE_SIZE);
  return h;
}

function encodeEdges(edges: Edge[]): Buffer {
  const b = Buffer.alloc(4 + edges.length * EDGE_SIZE);
  b.writeUInt32BE(edges.length, 0);
  edges.forEach((e, i) => {
    b[4 + i * EDGE_SIZE] = e.type;
    e.id.copy(b, 5 + i * EDGE_SIZE);
  });
  return b;
}

function encrypt(key: Buffer, nonce: Buffer, aad: Buffer[], plain: Uint8Array[]): Buffer[] {
  const c = crypto.createCipheriv('aes-256-gcm', key, nonce);
  c.setAAD(Buffer.concat(aad));
  const out = plain.map((p) => c.update(p));
  out.push(c.final(), c.getAuthTag());
  return out;
}

/** Spare bytes around a sealed blob in a buffer of its own: a transport may frame the blob there without a copy. */
export interface Room {
  head: number;
  tail: number;
}

const NO_ROOM: Room = { head: 0, tail: 0 };

/**
 * Seal a data chunk whose id is already known. With `room`, the result is a
 * view into an ArrayBuffer of its own with `room.head` spare bytes before it
 * and `room.tail` after it (a worker transfers it whole; a transport writes
 * its framing around it in place).
 */
export function sealData(keys: RepoKeys, salt: Buffer, id: Id, plaintext: Uint8Array, compression: Compression, room: Room = NO_ROOM): Buffer {
  const frame = Buffer.allocUnsafeSlow(room.head + sealedSizeBound(plaintext.length) + room.tail);
  const out = sealDataTo(keys, salt, id, plaintext, compression, frame.subarray(room.head, frame.length - room.tail));
  // Compression shrank it: the tail room grows by what was saved, which is harmless.
  return out;
}

/**
 * Bytes per cipher update() call. Each call returns a new buffer of this size; the agent's
 * launcher sets glibc's mmap threshold to 256 KiB (bounded RSS), so a 256 KiB piece was a fresh mapping
 * per call: page faults, zeroing and munmap made AES-GCM 6x dearer (138 vs 21 CPU-ms per 16 MiB,
 * `MALLOC_MMAP_THRESHOLD_=262144`, 2 runs each). 64 KiB comes from the heap, reused and cache-warm.
 */
const CIPHER_PIECE = 64 * 1024;

/** The largest stored size of a data chunk of `n` bytes (compression is kept only when it shrinks). */
export function sealedSizeBound(n: number): number {
  return HEADER_SIZE + 1 + n + TAG_SIZE;
}

/**
 * Bytes a chunk's buffer needs before and after the chunk to be sealed where
 * it lies (sealDataTo with `out` starting this far before the plaintext).
 */
export const SEAL_IN_PLACE: Room = { head: HEADER_SIZE + 1, tail: TAG_SIZE };

/**
 * Room a transport may use around a stored blob to frame it without a copy:
 * enough for keep.v1's UploadRequest fields before the data (session id,
 * blob id, data length) and after it (storage hash).
 */
export const BLOB_ROOM: Room = { head: 128, tail: 48 };

/** Room around a chunk in its buffer: it is sealed where it lies, and the blob framed where it lies. */
export const CHUNK_ROOM: Room = { head: SEAL_IN_PLACE.head + BLOB_ROOM.head, tail: SEAL_IN_PLACE.tail + BLOB_ROOM.tail };

/**
 * Seal a data chunk into `out` (at least sealedSizeBound bytes); returns the
 * stored bytes, a view at the start of `out`. The plaintext may lie inside
 * `out` itself, SEAL_IN_PLACE.head bytes after its start: it is read before
 * each part of it is overwritten, so a chunk is sealed in its own buffer.
 */
export function sealDataTo(keys: RepoKeys, salt: Buffer, id: Id, plaintext: Uint8Array, compression: Compression, out: Buffer): Buffer {
  const { codec, bytes } = compressBlob(plaintext, compression);
  const size = HEADER_SIZE + 1 + bytes.length + TAG_SIZE;
  if (out.length < size) throw new KeepError('INTERNAL', `seal buffer of ${out.length} bytes for a blob of ${size}`);
  out.fill(0, 0, HEADER_SIZE);
  out[0] = BLOB_VERSION;
  out[1] = BlobType.Data;
  salt.copy(out, SALT_OFFSET);
  fillNonce(out, NONCE_OFFSET, NONCE_SIZE);
  const c = crypto.createCipheriv('aes-256-gcm', keys.sealKey(salt), out.subarray(NONCE_OFFSET, NONCE_OFFSET + NONCE_SIZE));
  const aad = Buffer.allocUnsafe(id.length + HEADER_SIZE);
  id.copy(aad, 0);
  out.copy(aad, id.length, 0, HEADER_SIZE);
  c.setAAD(aad);
  let at = HEADER_SIZE;
  at += c.update(Buffer.of(codec)).copy(out, at);
  // In pieces: each update() returns a new buffer (garbage once copied), so a piece's worth, not a chunk's.
  // A piece is read whole before its ciphertext lands where it lay, ahead of every later piece.
  for (let o = 0; o < bytes.length; o += CIPHER_PIECE) at += c.update(bytes.subarray(o, o + CIPHER_PIECE)).copy(out, at);
  at += c.final().copy(out, at);
  c.getAuthTag().copy(out, at);
  return out.subarray(0, size);
}

/**
 * A chunk sealed for upload, with BLOB_ROOM around it and its storage hash:
 * `inPlace`, written over the chunk in the chunk's own buffer (a chunk buffer
 * with CHUNK_ROOM, see chunker.ts); otherwise into an ArrayBuffer of its own.
 * The seal pool does this on the calling thread for its first MiBs, its
 * workers for the rest.
 */
export function sealForUpload(keys: RepoKeys, salt: Buffer, id: Id, plaintext: Uint8Array, compression: Compression, inPlace: boolean): { bytes: Buffer; hash: Buffer } {
  const bytes = inPlace
    ? sealDataTo(keys, salt, id, plaintext, compression, Buffer.from(plaintext.buffer, BLOB_ROOM.head, plaintext.buffer.byteLength - BLOB_ROOM.head - BLOB_ROOM.tail))
    : sealData(keys, salt, id, plaintext, compression, BLOB_ROOM);
  return { bytes, hash: storageHash(bytes) };
}

/** A tree node's id: keyed hash over its edges and payload, with its own key so it can never equal a chunk id. */
export function treeId(keys: RepoKeys, edges: Edge[], payload: Uint8Array): Id {
  return keyedHash(keys.treeIdKey, Buffer.concat([encodeEdges(edges), payload]));
}

/**
 * Seal a tree node: plaintext edges, encrypted payload. Returns its id and stored bytes.
 * `knownId`: its treeId, when the caller computed it already (not hashed twice).
 */
export function sealTree(keys: RepoKeys, salt: Buffer, edges: Edge[], payload: Uint8Array, compression: Compression, knownId?: Id): { id: Id; bytes: Buffer } {
  if (payload.length > MAX_TREE_PLAINTEXT) throw new KeepError('INVALID_ARGUMENT', `a directory's tree node of ${payload.length} bytes is over the ${MAX_TREE_PLAINTEXT}-byte bound restore reads`);
  const edgeBytes = encodeEdges(edges);
  const id = knownId ?? keyedHash(keys.treeIdKey, Buffer.concat([edgeBytes, payload]));
  const h = header(BlobType.Tree, salt);
  const { codec, bytes } = compressBlob(payload, compression);
  const body = encrypt(keys.sealKey(salt), h.subarray(NONCE_OFFSET, NONCE_OFFSET + NONCE_SIZE), [id, h, edgeBytes], [Buffer.of(codec), bytes]);
  return { id, bytes: Buffer.concat([h, edgeBytes, ...body]) };
}

export interface ParsedBlob {
  type: BlobType;
  salt: Buffer;
  nonce: Buffer;
  edges: Edge[];
  /** offset where the ciphertext starts (= length of the AAD-covered prefix) */
  bodyOffset: number;
}

/** Parse the plaintext parts of a stored blob. Needs no key: the server and replicas use it to walk trees. */
export function parseBlob(stored: Buffer): ParsedBlob {
  if (stored.length < HEADER_SIZE + 1 + TAG_SIZE) throw corrupt(`blob too short (${stored.length} bytes)`);
  if (stored[0] !== BLOB_VERSION) throw corrupt(`unknown blob version ${stored[0]}`);
  const type = stored[1] as BlobType;
  if (type !== BlobType.Data && type !== BlobType.Tree) throw corrupt(`unknown blob type ${type}`);
  const salt = stored.subarray(SALT_OFFSET, SALT_OFFSET + SALT_SIZE);
  const nonce = stored.subarray(NONCE_OFFSET, NONCE_OFFSET + NONCE_SIZE);
  const edges: Edge[] = [];
  let bodyOffset = HEADER_SIZE;
  if (type === BlobType.Tree) {
    if (stored.length < HEADER_SIZE + 4) throw corrupt('tree blob too short for its edge count');
    const n = stored.readUInt32BE(HEADER_SIZE);
    bodyOffset = HEADER_SIZE + 4 + n * EDGE_SIZE;
    if (bodyOffset + 1 + TAG_SIZE > stored.length) throw corrupt(`tree blob claims ${n} edges but is ${stored.length} bytes`);
    for (let i = 0; i < n; i++) {
      const o = HEADER_SIZE + 4 + i * EDGE_SIZE;
      const et = stored[o] as BlobType;
      if (et !== BlobType.Data && et !== BlobType.Tree) throw corrupt(`tree edge ${i} has unknown type ${et}`);
      edges.push({ type: et, id: stored.subarray(o + 1, o + 1 + ID_SIZE) });
    }
  }
  return { type, salt, nonce, edges, bodyOffset };
}

/** The most a blob of type `type` may decompress to: `maxChunk` (its repository's max chunk size) for data. */
function plaintextBound(type: BlobType, maxChunk: number): number {
  return type === BlobType.Data ? maxChunk : MAX_TREE_PLAINTEXT;
}

/**
 * Decrypt and decompress a stored blob, and prove it is the blob named `id`:
 * GCM authenticates it against the id (AAD), and the plaintext is re-hashed.
 * A data blob decompresses to at most `maxChunk` bytes (compress.ts: a bomb is
 * refused without allocating it); pass the repository's max chunk size.
 */
export function openBlob(keys: RepoKeys, id: Id, stored: Buffer, maxChunk = MAX_PLAINTEXT): { type: BlobType; edges: Edge[]; plaintext: Buffer } {
  const p = parseBlob(stored);
  const d = decipherFor(keys, id, stored, p);
  let sealed: Buffer;
  try {
    sealed = Buffer.concat([d.update(stored.subarray(p.bodyOffset, stored.length - TAG_SIZE)), d.final()]);
  } catch {
    throw new KeepError('CORRUPT', `blob ${toHex(id)} fails authentication (damaged, or not this repository's)`);
  }
  const plaintext = decompressBlob(sealed[0], sealed.subarray(1), plaintextBound(p.type, maxChunk));
  proveId(keys, id, stored, p, plaintext);
  return { type: p.type, edges: p.edges, plaintext };
}

/** The blob's AES-GCM decipher: its salt's key, its nonce, its id and header as AAD, its tag. */
function decipherFor(keys: RepoKeys, id: Id, stored: Buffer, p: ReturnType<typeof parseBlob>): crypto.DecipherGCM {
  const d = crypto.createDecipheriv('aes-256-gcm', keys.sealKey(Buffer.from(p.salt)), p.nonce);
  d.setAAD(Buffer.concat([id, stored.subarray(0, p.bodyOffset)]));
  d.setAuthTag(Buffer.from(stored.subarray(stored.length - TAG_SIZE)));
  return d;
}

/** The plaintext must hash to the id it was asked for (a tree's id covers its edges too). */
function proveId(keys: RepoKeys, id: Id, stored: Buffer, p: ReturnType<typeof parseBlob>, plaintext: Buffer): void {
  const check =
    p.type === BlobType.Data
      ? keyedHash(keys.chunkIdKey, plaintext)
      : keyedHash(keys.treeIdKey, Buffer.concat([stored.subarray(HEADER_SIZE, p.bodyOffset), plaintext]));
  if (!check.equals(id)) throw new KeepError('CORRUPT', `blob ${toHex(id)} decrypts to content with a different id`);
}

/**
 * The buffer a thread reuses for the plaintexts it decompresses
 * (openBlobInPlace): it grows to the largest seen, up to `keep` bytes; a
 * larger plaintext gets a buffer of its own.
 */
export class OpenScratch {
  private buf = Buffer.alloc(0);

  constructor(private readonly keep = 4 * 1024 * 1024 + 64 * 1024) {}

  /** A buffer of at least `n` bytes. */
  get(n: number): Buffer {
    if (this.buf.length >= n) return this.buf;
    const b = Buffer.allocUnsafeSlow(n);
    if (n <= this.keep) this.buf = b;
    return b;
  }
}

/**
 * openBlob for a caller that owns `stored` and is done with it afterwards
 * (the restore's worker): it is decrypted where it lies, and a compressed
 * plaintext is decompressed into `scratch`. The plaintext is a view into one
 * of the two, valid until `stored` is dropped or `scratch` used again. Per
 * blob, only the cipher's 256 KiB pieces are left for the collector (openBlob
 * leaves the blob's size three times over).
 */
export function openBlobInPlace(keys: RepoKeys, id: Id, stored: Buffer, scratch: OpenScratch, maxChunk = MAX_PLAINTEXT): { type: BlobType; edges: Edge[]; plaintext: Buffer } {
  const p = parseBlob(stored);
  const d = decipherFor(keys, id, stored, p);
  const body = stored.subarray(p.bodyOffset, stored.length - TAG_SIZE);
  let at = 0;
  try {
    // A piece is read whole before its plaintext (the same length: GCM is a stream mode) lands where it lay.
    for (let o = 0; o < body.length; o += CIPHER_PIECE) at += d.update(body.subarray(o, o + CIPHER_PIECE)).copy(body, at);
    at += d.final().copy(body, at);
  } catch {
    throw new KeepError('CORRUPT', `blob ${toHex(id)} fails authentication (damaged, or not this repository's)`);
  }
  if (at < 1) throw new KeepError('CORRUPT', `blob ${toHex(id)} holds no codec byte`);
  const plaintext = decompressBlobInto(body[0], body.subarray(1, at), (n) => scratch.get(n), plaintextBound(p.type, maxChunk));
  proveId(keys, id, stored, p, plaintext);
  return { type: p.type, edges: p.edges, plaintext };
}

export function chunkId(keys: RepoKeys, plaintext: Uint8Array): Id {
  return keyedHash(keys.chunkIdKey, plaintext);
}
