import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Database, open, RootDatabase } from 'lmdb';

/**
 * A throw-away LMDB file for collections too large for V8's Map and Set
 * (spilling-set.ts, gc/pack-usage.ts): binary keys and values, no fsync.
 * The file is unlinked as soon as it is open (Linux keeps the mapping), so
 * it never outlives the process and a crash leaves nothing to clean up; the
 * space returns when it is closed. A repository passes its own tmp/ so the
 * scratch lands on the repository's disk, not on a RAM-backed /tmp.
 */
export class ScratchEnv {
  private closed = false;

  private constructor(private readonly env: RootDatabase) {}

  static open(dir: string = os.tmpdir()): ScratchEnv {
    // A unique name: lmdb-js shares one env per path within a process.
    const file = path.join(dir, `scratch-${process.pid}-${crypto.randomBytes(6).toString('hex')}.mdb`);
    const env = open({ path: file, noSubdir: true, compression: false, noSync: true, maxDbs: 4 });
    for (const f of [file, `${file}-lock`]) fs.rmSync(f, { force: true });
    return new ScratchEnv(env);
  }

  table(name: string): Database<Buffer, Buffer> {
    return this.env.openDB<Buffer, Buffer>({ name, keyEncoding: 'binary', encoding: 'binary' });
  }

  /** `write` in one synchronous transaction (callers keep each one bounded). */
  write(write: () => void): void {
    this.env.transactionSync(write);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    void this.env.close();
  }
}
