import type { Database } from 'lmdb';
import { ScratchEnv } from './scratch-env.js';
import type { SeenSet } from './seen-set.js';

/** Adds buffered before one write transaction to the scratch table. */
const FLUSH_EVERY = 50_000;
const PRESENT = Buffer.from([1]);
/** A spilled set dropped without close() (a caller that only reads it) still frees its scratch file. */
const unclosed = new FinalizationRegistry<ScratchEnv>((scratch) => scratch.close());

/**
 * A SeenSet that is a V8 Set until it holds `spillAt` keys, then moves them
 * into a scratch LMDB table (scratch-env.ts) and keeps only a bounded buffer
 * of recent adds in memory. Keys are stored binary (keyCodec below): an id's
 * 32 bytes, not its 64 hex digits. Iterating a spilled set yields keys in
 * their binary order.
 */
export class SpillingSet implements SeenSet {
  private memory: Set<string> | undefined = new Set();
  /** spilled: adds not yet written to `table` */
  private pending = new Set<string>();
  private scratch: ScratchEnv | undefined;
  private table: Database<Buffer, Buffer> | undefined;
  private count = 0;

  constructor(
    private readonly spillAt: number,
    private readonly dir?: string,
  ) {}

  get size(): number {
    return this.count;
  }

  /** Whether the keys live on disk now (tests, benchmarks). */
  get spilled(): boolean {
    return this.memory === undefined;
  }

  has(key: string): boolean {
    if (this.memory) return this.memory.has(key);
    return this.pending.has(key) || this.table!.doesExist(encodeKey(key));
  }

  add(key: string): this {
    if (this.has(key)) return this;
    this.count++;
    if (this.memory) {
      this.memory.add(key);
      if (this.memory.size > this.spillAt) this.spill();
    } else {
      this.pending.add(key);
      if (this.pending.size >= FLUSH_EVERY) this.flush();
    }
    return this;
  }

  *[Symbol.iterator](): Iterator<string> {
    if (this.memory) {
      yield* this.memory;
      return;
    }
    this.flush();
    for (const k of this.table!.getKeys()) yield decodeKey(k as Buffer);
  }

  /** Release the scratch file (a spilled set is empty afterwards). */
  close(): void {
    unclosed.unregister(this);
    this.scratch?.close();
    this.scratch = this.table = undefined;
    this.memory ??= new Set();
    this.memory.clear();
    this.pending.clear();
    this.count = 0;
  }

  private spill(): void {
    this.scratch = ScratchEnv.open(this.dir);
    this.table = this.scratch.table('keys');
    unclosed.register(this, this.scratch, this);
    this.pending = this.memory!;
    this.memory = undefined;
    this.flush();
  }

  /**
   * Write the buffered adds in transactions of FLUSH_EVERY keys, each sorted
   * (it lands on neighbouring pages); encoded a chunk at a time, so a spill
   * holds no second copy of the whole set.
   */
  private flush(): void {
    if (this.pending.size === 0) return;
    const write = (chunk: string[]) => {
      const keys = chunk.map(encodeKey).sort(Buffer.compare);
      this.scratch!.write(() => {
        for (const k of keys) this.table!.putSync(k, PRESENT);
      });
    };
    let chunk: string[] = [];
    for (const key of this.pending) {
      chunk.push(key);
      if (chunk.length === FLUSH_EVERY) write(chunk), (chunk = []);
    }
    write(chunk);
    this.pending.clear();
  }
}

const HEX_ID = /^[0-9a-f]{64}$/;
const HEX_ID_TAG = /^([0-9a-f]{64})\/(\d{1,9})$/;
/** First byte of an encoded key: an id, an id with a numeric tag (`hex/n`), any other string. */
const enum Form {
  Id = 0,
  IdTag = 1,
  Text = 2,
}

/** Keys as walks name them (a hex id, or `hex/n` for a copy or a view) in 33 or 37 bytes. */
export function encodeKey(key: string): Buffer {
  if (key.length === 64 && HEX_ID.test(key)) {
    const b = Buffer.allocUnsafe(33);
    b[0] = Form.Id;
    b.write(key, 1, 'hex');
    return b;
  }
  const m = HEX_ID_TAG.exec(key);
  if (m) {
    const b = Buffer.allocUnsafe(37);
    b[0] = Form.IdTag;
    b.write(m[1], 1, 'hex');
    b.writeUInt32BE(Number(m[2]), 33);
    return b;
  }
  return Buffer.concat([Buffer.from([Form.Text]), Buffer.from(key, 'utf8')]);
}

export function decodeKey(b: Buffer): string {
  if (b[0] === Form.Id) return b.toString('hex', 1, 33);
  if (b[0] === Form.IdTag) return `${b.toString('hex', 1, 33)}/${b.readUInt32BE(33)}`;
  return b.toString('utf8', 1);
}
