import type { CheckOptions, CheckReport, ForgetOptions, ForgetResult, Id, KeyFile, RepoConfig, RunReport, DrillReport, SealedBlob, SealedSnapshot, Snapshot } from '@keep/core';

/**
 * What the agent needs from a repository, whether embedded (a local
 * directory, repo/local.ts) or remote (a keepd over gRPC). Everything the
 * agent sends through it is already sealed: a connection never sees a key.
 */
export interface RepoConnection {
  readonly location: string;
  config(): Promise<RepoConfig>;
  /** the usable key files */
  keyFiles(): Promise<KeyFile[]>;
  /** why each other key file is unusable (damaged, out of bounds): unlock warns and skips them */
  damagedKeyFiles(): Promise<string[]>;
  addKeyFile(f: KeyFile): Promise<void>;
  removeKeyFile(id: string): Promise<void>;
  /** true when the repository refuses writes (a keepd replica not promoted); absent: never */
  readOnly?(): Promise<boolean>;
  /** Open a writer session for one source; its lease protects what it is told it need not send. */
  beginBackup(opts: { source: string; host: string; parent?: string }): Promise<BackupSession>;
  getBlob(id: Id): Promise<Buffer>;
  /**
   * Read, from here on, the named source's own bytes of each blob (its copy of
   * a blob another source stored first): a restore of that source's snapshot.
   */
  readAs(source: string): void;
  snapshots(filter?: { source?: string }): Promise<Snapshot[]>;
  /** Keyless structural check (index against packs, storage hashes, closure). */
  check(opts: CheckOptions): Promise<CheckReport>;
  repoStats(): Promise<RepoStats>;
  /** Retention (core's forget engine; over gRPC, admin tokens only). */
  forget(o: ForgetOptions): Promise<ForgetResult>;
  /** Rewrite records (`keep tag`): each replacement published, its old record removed (admin tokens only over gRPC). */
  replaceSnapshots(list: { oldId: string; snapshot: SealedSnapshot }[]): Promise<Snapshot[]>;
  /**
   * Tell keepd how runs of `keep agent run` ended (ReportRuns; agent tokens:
   * their own sources). An embedded repository has no keepd to tell: it
   * answers `reported: false` and the agent's state file is the only record.
   */
  reportRuns(reports: RunReport[]): Promise<RunsReported>;
  /** Tell keepd how restore drills went (ReportDrills, audited "drill.done"); an embedded repository answers `reported: false`. */
  reportDrills(drills: DrillReport[]): Promise<RunsReported>;
  close(): Promise<void>;
}

/** reportRuns' answer: whether a server took the reports, and its clock when it did. */
export type RunsReported = { reported: true; server_time: string } | { reported: false };

export interface BackupSession {
  /** The subset of `ids` the repository wants sent (dedup negotiation). */
  missing(ids: Id[]): Promise<Id[]>;
  /** Store sealed blobs; resolves (with how many stored bytes were new) once the repository holds every one. */
  put(blobs: SealedBlob[]): Promise<number>;
  /** Make everything put so far durable, check closure, publish the snapshot (MACed by the agent: sealSnapshot). */
  commit(s: SealedSnapshot): Promise<Snapshot>;
  /** End without a snapshot (blobs already stored stay for a rerun to reuse). */
  abort(): Promise<void>;
}

export interface RepoStats {
  snapshots: number;
  blobs: number;
  packs: number;
  /** bytes in pack files */
  stored_bytes: number;
}
