import { Clock, processClock, SealPool } from '@keep/core';
import { runCommandJob } from './command-job.js';
import { AgentConfig, Job, loadConfig } from './config.js';
import { diffConfig } from './config-diff.js';
import { formatDurationMs } from '@keep/core';
import { JobContext, runFilesJob } from './files-job.js';
import { HeldKey } from './held-key.js';
import { createLogger, Logger } from './log.js';
import type { RunOutcome, RunTotals } from './run-outcome.js';
import { RunReporter } from './run-reporter.js';
import { Scheduler } from './scheduler.js';
import { StateFile } from './state-file.js';
import { runPostgresJob } from './postgres-job.js';
import { runDrillJob } from './drill-job.js';
import { AgentRequest, StatusSocket } from './status-socket.js';
import { NotHandled, WalArchiver, walSealPool } from './wal-archiver.js';
import { statusReport } from './status-report.js';

/** The longest the timer sleeps: a clock jump (suspend, resume) is noticed within it. */
const MAX_SLEEP_MS = 60_000;

export interface AgentOptions {
  configFile: string;
  stateDir?: string;
  /** how long SIGTERM waits for a running job before aborting it */
  graceMs: number;
  clock?: Clock;
}

/**
 * `keep agent run`: the key unlocked once, the jobs run in this process on
 * their schedules, every run recorded in the state file and reported, a
 * status socket for `keep agent status`. SIGTERM (and SIGINT) lets the
 * running job finish, aborting it past the grace period, and resolves 0;
 * SIGHUP reloads the config, keeping the old one when the new is invalid.
 */
export class AgentService {
  private readonly log: Logger;
  private readonly clock: Clock;
  private config!: AgentConfig;
  private state!: StateFile;
  private key!: HeldKey;
  private reporter!: RunReporter;
  private pool!: SealPool;
  /** the WAL archiver's own (wal-archiver.ts walSealPool): a segment's chunks sealed two at a time, whatever the jobs seal meanwhile */
  private walPool!: SealPool;
  private scheduler!: Scheduler;
  private socket?: StatusSocket;
  private wal?: WalArchiver;
  private timer?: NodeJS.Timeout;
  private stopping = false;
  private readonly started: number;

  constructor(private readonly opts: AgentOptions) {
    this.log = createLogger();
    this.clock = opts.clock ?? processClock();
    this.started = this.clock.now();
  }

  /** Runs until a stop signal; resolves with the exit code. */
  async run(): Promise<number> {
    // Stop signals are caught from the first instruction: one landing while the agent starts
    // (unlocking can wait on keepd) would otherwise take the default action and kill it mid-write.
    process.removeAllListeners('SIGINT'); // the CLI's exit-at-once handler: the agent stops as on SIGTERM
    const signalled = new Promise<string>((resolve) => {
      process.once('SIGTERM', () => resolve('SIGTERM'));
      process.once('SIGINT', () => resolve('SIGINT'));
    });
    // SIGHUP likewise: during the start it is remembered, and reloads once the jobs are set
    let ready = false;
    let hupWhileStarting = false;
    process.on('SIGHUP', () => (ready ? this.reload() : (hupWhileStarting = true)));
    const started = this.start().then(() => undefined);
    const early = await Promise.race([started, signalled]);
    if (early !== undefined) {
      this.log.info({ signal: early }, 'stopped while starting');
      return 0;
    }
    ready = true;
    if (hupWhileStarting) this.reload();
    this.arm();
    return this.stop(await signalled);
  }

  /** Config, key, scheduler, WAL archiver and status socket; no job runs until arm(). */
  private async start(): Promise<void> {
    const { config, warnings } = loadConfig(this.opts.configFile, { stateDir: this.opts.stateDir });
    this.config = config;
    for (const w of warnings) this.log.warn(w);
    this.state = StateFile.open(config.stateDir);
    this.log.info({ repository: config.repository.location }, 'unlocking the repository');
    this.key = await HeldKey.unlock(config.repository);
    this.log.info({ repository: config.repository.location, jobs: config.jobs.map((j) => j.name) }, 'repository unlocked; agent started');
    this.pool = new SealPool(this.key.master);
    this.walPool = walSealPool(this.key.master);
    this.reporter = new RunReporter(config.stateDir, this.key, config.repository.location, this.log);
    this.scheduler = new Scheduler(this.clock, {
      run: (job, signal) => this.runJob(job, signal),
      onStart: (job, start, reason) => {
        this.state.markRunning(job.name, start, reason);
        this.log.info({ job: job.name, reason }, 'run started');
      },
      onOutcome: (o) => this.finished(o),
      onPlanChanged: () => this.arm(),
    });
    this.scheduler.setJobs(config.jobs, (n) => this.state.history(n));
    this.wal = new WalArchiver(this.key, this.walPool, config.host, this.clock, this.log, () => this.config.jobs);
    this.socket = await StatusSocket.listen(config.socket, (r) => this.answer(r));
  }

  private async runJob(job: Job, signal: AbortSignal): Promise<RunTotals> {
    const repo = await this.key.open();
    const c: JobContext = { repo, pool: this.pool, host: this.config.host, clock: this.clock, signal, warn: (w) => this.log.warn({ job: job.name }, w) };
    try {
      switch (job.spec.type) {
        case 'files':
          return await runFilesJob(job, job.spec, c);
        case 'command':
          return await runCommandJob(job, job.spec, c);
        case 'postgres':
          return await runPostgresJob(job, job.spec, c);
        case 'drill':
          return await runDrillJob(job, job.spec, c);
      }
    } finally {
      await repo.conn.close();
    }
  }

  private async finished(o: RunOutcome): Promise<void> {
    this.state.record(o);
    const fields = { job: o.job, reason: o.reason, attempt: o.attempt, duration_s: (o.end - o.start) / 1000, snapshot: o.snapshot, files: o.files, bytes: o.bytes, warnings: o.warnings.length };
    if (o.result === 'success') this.log.info(fields, 'run succeeded');
    else this.log.error({ ...fields, error: o.error }, 'run failed');
    await this.reportRun(o);
  }

  /**
   * Each run's outcome to keepd (run-reporter.ts: error text sealed, queued
   * while keepd is unreachable), so the server learns of failures and not
   * only of commits. Never fails the run; an embedded repository has no
   * keepd, and the state file above is the record.
   */
  private async reportRun(outcome: RunOutcome): Promise<void> {
    const job = this.config.jobs.find((j) => j.name === outcome.job);
    // a job removed by a reload while it ran: its source is gone with it; a drill went to keepd as a drill (ReportDrills), not a backup run
    if (!job || job.spec.type === 'drill') return;
    await this.reporter.report(outcome, job).catch((e: unknown) => this.log.warn({ job: outcome.job, error: (e as Error).message }, 'could not queue the run report'));
  }

  /** (Re)set the timer for the scheduler's next wake. */
  private arm(): void {
    clearTimeout(this.timer);
    if (this.stopping) return;
    const wake = this.scheduler.nextWake();
    if (wake === undefined) return;
    const delay = Math.min(Math.max(0, wake - this.clock.now()), MAX_SLEEP_MS);
    this.timer = setTimeout(() => {
      this.scheduler.tick();
      this.arm();
    }, delay);
  }

  private reload(): void {
    let next: AgentConfig;
    try {
      const loaded = loadConfig(this.opts.configFile, { stateDir: this.opts.stateDir });
      for (const w of loaded.warnings) this.log.warn(w);
      next = loaded.config;
    } catch (e) {
      this.log.error({ error: (e as Error).message }, 'reload failed: the new config is invalid; the old one stays');
      return;
    }
    const changes = diffConfig(this.config, next);
    // the held key, socket and state directory stay as started
    this.config = { ...next, repository: this.config.repository, host: this.config.host, stateDir: this.config.stateDir, socket: this.config.socket };
    this.scheduler.setJobs(this.config.jobs, (n) => this.state.history(n));
    this.log.info(changes, 'config reloaded');
    if (changes.needRestart.length) this.log.warn({ keys: changes.needRestart }, 'these settings take effect when the agent restarts');
  }

  private async stop(signal: string): Promise<number> {
    this.stopping = true;
    clearTimeout(this.timer);
    const grace = this.scheduler.busy ? setTimeout(() => {
      this.log.warn({ grace: formatDurationMs(this.opts.graceMs) }, 'grace period over: aborting the running job');
      this.scheduler.abortRunning();
    }, this.opts.graceMs) : undefined;
    this.log.info({ signal, running: this.scheduler.plans().filter((p) => p.running).map((p) => p.job.name) }, 'stopping: letting the running job finish');
    await this.scheduler.stop();
    clearTimeout(grace);
    // WAL pushes under way are answered before the socket goes (PostgreSQL retries any refused after)
    await this.wal?.close();
    await this.socket?.close();
    await this.pool.close();
    await this.walPool.close();
    this.log.info('agent stopped');
    return 0;
  }

  /** A request on the socket: the status, or a WAL segment to archive (answered once committed). */
  private async answer(r: AgentRequest): Promise<unknown> {
    if (r.op === 'status') return this.status();
    if (r.op !== 'wal-push') return { ok: false, error: `unknown request ${r.op}`, code: 'INVALID_ARGUMENT' };
    if (this.stopping) return { ok: false, fallback: true, error: 'the agent is stopping' };
    if (typeof r.file !== 'string' || typeof r.source !== 'string') return { ok: false, error: 'wal-push takes file and source', code: 'INVALID_ARGUMENT' };
    try {
      return { ok: true, result: await this.wal!.push({ file: r.file, source: r.source }) };
    } catch (e) {
      if (e instanceof NotHandled) return { ok: false, fallback: true, error: e.message };
      throw e;
    }
  }

  private status(): unknown {
    return statusReport({ config: this.config, state: this.state, plans: this.scheduler.plans(), started: this.started, now: this.clock.now() });
  }
}
