import type { MessageSink } from './frame.js';

/*
 * keep.v1 ReadBlobsResponse (proto/keep/v1/repository.proto), decoded by hand
 * as its bytes arrive:
 *
 *   ReadBlobsResponse { 1: id bytes, 2: data bytes, 3: storage_hash bytes, 4: blobs repeated StoredBlob }
 *   StoredBlob        { 1: id bytes, 2: data bytes, 3: storage_hash bytes }
 *
 * Each blob's data is copied from the socket's chunks straight into an
 * ArrayBuffer of its own, which its caller owns (the restore moves it to a
 * worker, no copy there): no message is ever gathered whole, so nothing
 * received outlives its use (agent/src/repo/remote-stream.ts says why that matters). A
 * keepd that predates max_message_bytes sends one blob per message in the
 * response's own fields; both forms are read. Unknown fields are skipped.
 */

const enum S {
  Key,
  Len,
  Varint,
  Copy,
  Skip,
}

/** Longest id accepted (ids are 32 bytes). */
const MAX_ID = 64;

interface Slot {
  id?: Buffer;
  data?: Buffer;
}

export class ReadBlobsParser implements MessageSink {
  private s = S.Key;
  private vnum = 0;
  private vmul = 1;
  private vbytes = 0;
  private field = 0;
  /** bytes of the message, and of the StoredBlob being read (-1: none), still to come */
  private msgLeft = 0;
  private blobLeft = -1;
  /** Copy and Skip: bytes still to come, the buffer copied into, where, and which field it is */
  private need = 0;
  private buf: Buffer | undefined;
  private at = 0;
  private into: 'id' | 'data' = 'id';
  private top: Slot = {};
  private blob: Slot = {};

  /** where ids are copied (one at a time: onBlob must not keep its id) */
  private readonly ids = [Buffer.alloc(MAX_ID), Buffer.alloc(MAX_ID)];

  /** `onBlob` gets each blob in order: `id` valid only during the call, `data` a buffer of its own. */
  constructor(private readonly onBlob: (id: Buffer, data: Buffer) => void) {}

  begin(length: number): void {
    this.msgLeft = length;
    this.s = S.Key;
    this.top = {};
  }

  bytes(p: Buffer): void {
    let i = 0;
    while (i < p.length) {
      if (this.s === S.Copy || this.s === S.Skip) {
        const n = Math.min(this.need, p.length - i);
        if (this.s === S.Copy) p.copy(this.buf!, this.at, i, i + n);
        this.at += n;
        this.need -= n;
        i += n;
        this.consume(n);
        if (this.need === 0) this.fieldDone();
        continue;
      }
      const c = p[i++];
      this.consume(1);
      this.vnum += (c & 0x7f) * this.vmul;
      this.vmul *= 128;
      if (++this.vbytes > 10) throw malformed('a varint longer than 10 bytes');
      if (c & 0x80) continue;
      const v = this.vnum;
      this.vnum = 0;
      this.vmul = 1;
      this.vbytes = 0;
      if (this.s === S.Key) this.key(v);
      else if (this.s === S.Len) this.len(v);
      else this.fieldDone();
    }
  }

  end(): void {
    if (this.s !== S.Key || this.vbytes !== 0 || this.blobLeft >= 0 || this.msgLeft !== 0) throw malformed('a message ends inside a field');
    // The older form: one blob in the response's own fields.
    if (this.top.id?.length) this.onBlob(this.top.id, this.top.data ?? Buffer.alloc(0));
    this.top = {};
  }

  private consume(n: number): void {
    this.msgLeft -= n;
    if (this.msgLeft < 0) throw malformed('a field runs past the end of its message');
    if (this.blobLeft >= 0) {
      this.blobLeft -= n;
      if (this.blobLeft < 0) throw malformed('a field runs past the end of its blob');
    }
  }

  private key(k: number): void {
    this.field = Math.floor(k / 8);
    const wire = k & 7;
    if (wire === 0) this.s = S.Varint;
    else if (wire === 2) this.s = S.Len;
    else if (wire === 1 || wire === 5) this.skip(wire === 1 ? 8 : 4);
    else throw malformed(`wire type ${wire}`);
  }

  private len(n: number): void {
    if (n > (this.blobLeft >= 0 ? this.blobLeft : this.msgLeft)) throw malformed('a length past the end of its message');
    if (this.blobLeft < 0 && this.field === 4) {
      // A StoredBlob: its fields follow.
      this.blob = {};
      this.blobLeft = n;
      this.s = S.Key;
      if (n === 0) this.fieldDone();
      return;
    }
    if (this.field === 1 || this.field === 2) {
      if (this.field === 1 && n > MAX_ID) throw malformed(`an id of ${n} bytes`);
      this.into = this.field === 1 ? 'id' : 'data';
      // The response's own id and a StoredBlob's are read into different buffers: the former is used at the message's end.
      this.buf = this.field === 1 ? this.ids[this.blobLeft >= 0 ? 0 : 1].subarray(0, n) : n ? Buffer.allocUnsafeSlow(n) : Buffer.alloc(0);
      this.at = 0;
      this.need = n;
      this.s = S.Copy;
      if (n === 0) this.fieldDone();
      return;
    }
    this.skip(n);
  }

  private skip(n: number): void {
    this.buf = undefined;
    this.need = n;
    this.s = S.Skip;
    if (n === 0) this.fieldDone();
  }

  /** A field (or an empty StoredBlob) is complete. */
  private fieldDone(): void {
    if (this.s === S.Copy) (this.blobLeft >= 0 ? this.blob : this.top)[this.into] = this.buf;
    this.buf = undefined;
    this.s = S.Key;
    if (this.blobLeft === 0) {
      this.blobLeft = -1;
      const b = this.blob;
      this.blob = {};
      if (b.id?.length) this.onBlob(b.id, b.data ?? Buffer.alloc(0));
    }
  }
}

const malformed = (what: string) => new Error(`keepd sent a malformed ReadBlobs response (${what})`);
