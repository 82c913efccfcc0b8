import { BlobView, storageFailure, CheckOptions, ChunkerParams, CheckReport, Clock, forgetSnapshots, ForgetOptions, ForgetResult, Id, KeyFile, prune, Repository, SealedBlob, SealedSnapshot, Snapshot, WriterSession } from '@keep/core';
import type { BackupSession, RepoConnection, RepoStats, RunsReported } from './connection.js';

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
    await this.repo.addKeyFile(f);
  }
  async removeKeyFile(id: string) {
    await this.repo.removeKeyFile(id);
  }

  async beginBackup(opts: { source: string; host: string; parent?: string }): Promise<BackupSession> {
    // Registered like keepd's sessions, so a prune running meanwhile (another process) protects this backup.
    const session = await WriterSession.open(this.repo, opts).catch(reported(this.repo));
    return new LocalSession(this.repo, session);
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

  /** No keepd here: nothing to report to (the agent's state file keeps its runs). */
  async reportRuns(): Promise<RunsReported> {
    return { reported: false };
  }

  /** No keepd here: a drill's result is only printed. */
  async reportDrills(): Promise<RunsReported> {
    return { reported: false };
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
  constructor(
    private readonly repo: Repository,
    private readonly session: WriterSession,
  ) {}

  async missing(ids: Id[]): Promise<Id[]> {
    await this.session.renewIfHalfUsed();
    return this.repo.missing(ids);
  }

  put(blobs: SealedBlob[]): Promise<number> {
    return this.session
      .inOrder(async () => {
        let added = 0;
        for (const b of blobs) {
          if (await this.session.writer.add(b.id, b.bytes)) added += b.bytes.length;
          // Written (or already held): the buffer can carry another chunk.
          b.release?.();
        }
        return added;
      })
      .catch(reported(this.repo));
  }

  async commit(s: SealedSnapshot): Promise<Snapshot> {
    await this.session.drained();
    try {
      await this.session.flush();
      return await this.session.commitSnapshot(s);
    } catch (e) {
      return reported(this.repo)(e);
    } finally {
      await this.session.end().catch(() => undefined);
    }
  }

  async abort(): Promise<void> {
    await this.session.drained();
    try {
      await this.session.flush();
      await this.session.end();
    } catch (e) {
      await reported(this.repo)(e);
    }
  }
}
