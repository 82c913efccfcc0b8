import { BlobView, BlobWriter, storageFailure, CheckOptions, ChunkerParams, forgetSnapshots, ForgetOptions, ForgetResult, prune, randomId, SESSION_LEASE_MS, CheckReport, Clock, Id, KeyFile, Repository, SealedBlob, SealedSnapshot, Snapshot } from '@keep/core';
import type { BackupSession, RepoConnection, RepoStats } from './connection.js';

/** An embedded repository in a local directory: the engine runs in this process. */
export class LocalConnection implements RepoConnection {
  private constructor(
    readonly location: string,
    readonly repo: Repository,
  ) {}

  static async open(dir: string, clock?: Clock): Promise<LocalConnection> {
    const onIndexRebuilt = (m: string) => void process.stderr.write(`keep: warning: ${m}\n`);
    return new LocalConnection(dir, await Repository.open(dir, { clock, onIndexRebuilt }));
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
  async damagedKeyFiles() {
    return this.repo.damagedKeyFiles().map((d) => d.problem);
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
    await this.repo.registerSession(id, { source: opts.source, host: opts.host, parent: opts.parent, started: now, leaseUntil: now + SESSION_LEASE_MS }).catch(reported(this.repo));
    return new LocalSession(this.repo, this.repo.openWriter(), id, now, now + SESSION_LEASE_MS);
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

  async forget(o: ForgetOptions): Promise<ForgetResult> {
    const r = await forgetSnapshots(this.repo, o, this.repo.clock);
    if (o.prune && !o.dryRun) r.prune = await prune(this.repo);
    return r;
  }

  async replaceSnapshots(list: { oldId: string; snapshot: SealedSnapshot }[]): Promise<Snapshot[]> {
    const out: Snapshot[] = [];
    for (const r of list) out.push(await this.repo.replaceSnapshot(r.oldId, r.snapshot));
    return out;
  }

  async repoStats(): Promise<RepoStats> {
    return { snapshots: this.repo.snapshots().length, blobs: this.repo.blobCount(), packs: this.repo.packCount(), stored_bytes: this.repo.storedBytes() };
  }

  close(): Promise<void> {
    return this.repo.close();
  }
}

/**
 * A write to the repository failed: a full disk (or an LMDB commit that
 * failed for it) is a repository error with one clear message, never taken
 * for an error reading the files being backed up.
 */
function reported(repo: Repository): (e: unknown) => Promise<never> {
  return async (e) => {
    throw await storageFailure(e, repo.dir);
  };
}

class LocalSession implements BackupSession {
  /** BlobWriter is one stream: puts are applied in order. */
  private chain: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly repo: Repository,
    private readonly writer: BlobWriter,
    private readonly id: string,
    private readonly started: number,
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
    }).catch(reported(this.repo));
    this.chain = run.catch(() => undefined);
    return run;
  }

  async commit(s: SealedSnapshot): Promise<Snapshot> {
    await this.chain;
    try {
      await this.writer.flush();
      return await this.repo.commitSnapshot(s, { started: this.started });
    } catch (e) {
      return reported(this.repo)(e);
    } finally {
      await this.repo.endSession(this.id).catch(() => undefined);
    }
  }

  async abort(): Promise<void> {
    await this.chain.catch(() => undefined);
    try {
      await this.writer.flush();
      await this.repo.endSession(this.id);
    } catch (e) {
      await reported(this.repo)(e);
    }
  }
}
