import { BlobWriter, CheckOptions, CheckReport, Clock, Id, KeyFile, NewSnapshot, Repository, Snapshot } from '@keep/core';
import type { BackupSession, RepoConnection, RepoStats } from './connection.js';

/** An embedded repository in a local directory: the engine runs in this process. */
export class LocalConnection implements RepoConnection {
  private constructor(
    readonly location: string,
    readonly repo: Repository,
  ) {}

  static async open(dir: string, clock?: Clock): Promise<LocalConnection> {
    return new LocalConnection(dir, await Repository.open(dir, { clock }));
  }

  static async init(dir: string, clock?: Clock): Promise<LocalConnection> {
    return new LocalConnection(dir, await Repository.init(dir, { clock }));
  }

  async config() {
    return this.repo.config;
  }
  async keyFiles() {
    return this.repo.keyFiles();
  }
  async addKeyFile(f: KeyFile) {
    this.repo.addKeyFile(f);
  }
  async removeKeyFile(id: string) {
    this.repo.removeKeyFile(id);
  }

  async beginBackup(): Promise<BackupSession> {
    return new LocalSession(this.repo, this.repo.openWriter());
  }

  getBlob(id: Id): Promise<Buffer> {
    return this.repo.readBlob(id);
  }

  async snapshots(filter: { source?: string } = {}): Promise<Snapshot[]> {
    return this.repo.snapshots(filter);
  }

  check(opts: CheckOptions): Promise<CheckReport> {
    return this.repo.check(opts);
  }

  async repoStats(): Promise<RepoStats> {
    return { snapshots: this.repo.snapshots().length, blobs: this.repo.blobCount(), packs: this.repo.packCount(), stored_bytes: this.repo.storedBytes() };
  }

  close(): Promise<void> {
    return this.repo.close();
  }
}

class LocalSession implements BackupSession {
  /** BlobWriter is one stream: puts are applied in order. */
  private chain: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly repo: Repository,
    private readonly writer: BlobWriter,
  ) {}

  missing(ids: Id[]): Promise<Id[]> {
    return this.repo.missing(ids);
  }

  put(blobs: { id: Id; bytes: Buffer }[]): Promise<number> {
    const run = this.chain.then(async () => {
      let added = 0;
      for (const b of blobs) if (await this.writer.add(b.id, b.bytes)) added += b.bytes.length;
      return added;
    });
    this.chain = run.catch(() => undefined);
    return run;
  }

  async commit(s: NewSnapshot): Promise<Snapshot> {
    await this.chain;
    await this.writer.flush();
    return this.repo.commitSnapshot(s);
  }

  async abort(): Promise<void> {
    await this.chain.catch(() => undefined);
    await this.writer.flush();
  }
}
