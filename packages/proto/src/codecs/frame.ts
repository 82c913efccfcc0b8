/*
 * gRPC's length-prefixed messages (the bytes of every call's body): each
 * message is preceded by a flag byte (0: not compressed) and its length (u32
 * BE). Written in place by the hand-made encoders (upload.ts) and split by
 * the agent's bulk streams (agent/src/repo/remote-stream.ts).
 */

/** The gRPC frame prefix of a message of `length` bytes, written at `at` in `b`. */
export function writeFramePrefix(b: Uint8Array, at: number, length: number): void {
  b[at] = 0;
  b[at + 1] = length >>> 24;
  b[at + 2] = (length >>> 16) & 0xff;
  b[at + 3] = (length >>> 8) & 0xff;
  b[at + 4] = length & 0xff;
}

export const FRAME_PREFIX = 5;

/**
 * Receives a call's response body: message boundaries (from the frame
 * prefixes) and each message's bytes in the pieces they arrived in.
 */
export interface MessageSink {
  /** A message of `length` bytes starts. */
  begin(length: number): void;
  /** The next bytes of the current message (a view into the socket's chunk: copy what is kept). */
  bytes(piece: Buffer): void;
  /** The current message is complete. */
  end(): void;
}

/** Splits a response body into messages for a MessageSink, whatever the chunking. */
export class FrameSplitter {
  private readonly prefix = Buffer.alloc(FRAME_PREFIX);
  private have = 0;
  /** bytes of the current message still to come; -1 while reading a prefix */
  private left = -1;

  constructor(
    private readonly sink: MessageSink,
    private readonly maxLength: number,
  ) {}

  /** True between messages (a body may end only there). */
  get idle(): boolean {
    return this.left < 0 && this.have === 0;
  }

  push(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length) {
      if (this.left < 0) {
        const n = Math.min(FRAME_PREFIX - this.have, chunk.length - at);
        chunk.copy(this.prefix, this.have, at, at + n);
        this.have += n;
        at += n;
        if (this.have < FRAME_PREFIX) return;
        this.have = 0;
        if (this.prefix[0] !== 0) throw new Error('keepd sent a compressed message, which this agent never asks for');
        this.left = this.prefix.readUInt32BE(1);
        if (this.left > this.maxLength) throw new Error(`keepd sent a message of ${this.left} bytes (at most ${this.maxLength} expected)`);
        this.sink.begin(this.left);
      }
      const n = Math.min(this.left, chunk.length - at);
      if (n > 0) this.sink.bytes(chunk.subarray(at, at + n));
      at += n;
      this.left -= n;
      if (this.left === 0) {
        this.left = -1;
        this.sink.end();
      }
    }
  }
}
