import fs from 'node:fs';
import path from 'node:path';

const SEP = Buffer.from('/');

/**
 * restic's scanner: a quick walk of the backup's paths, concurrent with the
 * backup itself, that counts the files and bytes it will go through, so the
 * progress has a total. Metadata only (no file is opened); entries the
 * selection leaves out are left out here too; what cannot be read is passed
 * over (the archiver warns about it). Asynchronous, so it runs while the
 * archiver waits on its uploads.
 */
export class Scanner {
  files = 0;
  bytes = 0;
  done = false;
  private stopped = false;
  /** hardlinked inodes counted: a snapshot's size counts each once (archiver.ts) */
  private readonly inodes = new Set<string>();

  constructor(
    private readonly paths: string[],
    private readonly exclude?: (full: Buffer, st: fs.BigIntStats) => boolean,
  ) {}

  /** Starts the walk; `done` is set when it has seen everything. */
  start(): this {
    void this.walkAll().then(
      () => (this.done = !this.stopped),
      () => undefined,
    );
    return this;
  }

  stop(): void {
    this.stopped = true;
  }

  private async walkAll(): Promise<void> {
    for (const p of this.paths) {
      if (this.stopped) return;
      const full = Buffer.from(path.resolve(p));
      const st = await lstat(full);
      if (st) await this.entry(full, st);
    }
  }

  private async entry(full: Buffer, st: fs.BigIntStats): Promise<void> {
    if (this.exclude?.(full, st)) return;
    if (st.isFile()) {
      this.files++;
      const inode = st.nlink > 1n ? `${st.dev}:${st.ino}` : undefined;
      if (inode !== undefined && this.inodes.has(inode)) return;
      if (inode !== undefined) this.inodes.add(inode);
      this.bytes += Number(st.size);
    } else if (st.isDirectory()) await this.dir(full);
  }

  private async dir(dir: Buffer): Promise<void> {
    if (this.stopped) return;
    let names: Buffer[];
    try {
      names = await fs.promises.readdir(dir, { encoding: 'buffer' });
    } catch {
      return;
    }
    const base = dir.equals(SEP) ? Buffer.alloc(0) : dir;
    const children = names.map((n) => Buffer.concat([base, SEP, n]));
    // a directory's entries stat'ed together: one thread-pool round trip for many
    const stats = await Promise.all(children.map(lstat));
    for (let i = 0; i < children.length && !this.stopped; i++) {
      const st = stats[i];
      if (st) await this.entry(children[i], st);
    }
  }
}

async function lstat(p: Buffer): Promise<fs.BigIntStats | undefined> {
  try {
    return await fs.promises.lstat(p, { bigint: true });
  } catch {
    return undefined;
  }
}
