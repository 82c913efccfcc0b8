import { BlobView, BlobWriter, CheckOptions, ChunkerParams, randomId, SESSION_LEASE_MS, CheckReport, Clock, Id, KeyFile, NewSnapshot, Repository, SealedBlob, Snapshot } from '@keep/core';
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

  static async init(dir: string, clock?: Clock, chunker?: ChunkerParams): Promise<LocalConnection> {
    return new LocalConnection(dir, await Repository.init(dir, { clock, chunker }));
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

  async beginBackup(opts: { source: string; host: string; parent?: string }): Promise<BackupSession> {
    const id = randomId();
    const now = this.repo.clock.now();
    // Registered like keepd's sessions, so a prune running meanwhile (another process) protects this backup.
    await this.repo.registerSession(id, { source: opts.source, host: opts.host, parent: opts.parent, started: now, leaseUntil: now + SESSION_LEASE_MS });
    return new LocalSession(this.repo, this.repo.openWriter(), id, now + SESSION_LEASE_MS);
  }

  private view: BlobView | undefined;

  getBlob(id: Id): Promise<Buffer> {
    return this.repo.readBlob(id, this.view);
  }

  readAs(source: string): void {
    this.view = this.repo.views.ofSource(source);
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
    private readonly id: string,
    private leaseUntil: number,
  ) {}

  /** Renew the recorded lease once half of it is used. */
  private async renew(): Promise<void> {
    const now = this.repo.clock.now();
    if (now < this.leaseUntil - SESSION_LEASE_MS / 2) return;
    this.leaseUntil = now + SESSION_LEASE_MS;
    await this.repo.renewSession(this.id, this.leaseUntil);
  }

  async missing(ids: Id[]): Promise<Id[]> {
    await this.renew();
    return this.repo.missing(ids);
  }

  put(blobs: SealedBlob[]): Promise<number> {
    const run = this.chain.then(async () => {
      let added = 0;
      for (const b of blobs) {
        if (await this.writer.add(b.id, b.bytes)) added += b.bytes.length;
        // Written (or already held): the buffer can carry another chunk.
        b.release?.();
      }
      return added;
    });
    this.chain = run.catch(() => undefined);
    return run;
  }

  async commit(s: NewSnapshot): Promise<Snapshot> {
    await this.chain;
    await this.writer.flush();
    try {
      return await this.repo.commitSnapshot(s);
    } finally {
      await this.repo.endSession(this.id);
    }
  }

  async abort(): Promise<void> {
    await this.chain.catch(() => undefined);
    await this.writer.flush();
    await this.repo.endSession(this.id);
  }
}
