import { spawn } from 'node:child_process';
import { PassThrough } from 'node:stream';
import { runBackup } from '../backup/run.js';
import { Archiver } from '../backup/archiver.js';
import type { CommandJobConfig } from './config-schema.js';
import type { Job } from './config.js';
import type { JobContext } from './files-job.js';
import { latestParent } from './parent.js';
import type { RunTotals } from './run-outcome.js';
import { classedError } from './run-error-class.js';

/** How much of the command's stderr a failure's error text quotes (its last lines). */
const STDERR_TAIL = 2000;

/**
 * One run of a command job (pg_dump, mysqldump): its stdout backed up as one
 * file named stdin_name, like `keep backup --stdin`. The snapshot is committed
 * only once the command has exited 0; any other end fails the run and the
 * session is aborted, so a truncated dump is never a snapshot.
 */
export async function runCommandJob(job: Job, spec: CommandJobConfig, c: JobContext): Promise<RunTotals> {
  const parent = await latestParent(c.repo, job.source, c.warn);
  const [program, ...args] = spec.argv;
  const child = spawn(program, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  // read from the start: Node resumes (and so discards) an unread stdout when the child exits
  const stdout = child.stdout.pipe(new PassThrough());
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => {
    stderr = (stderr + b.toString()).slice(-STDERR_TAIL);
  });
  const exited = new Promise<void>((resolve, reject) => {
    child.on('error', (e) => reject(new Error(`cannot run ${program}: ${e.message}`)));
    child.on('close', (code, signal) => {
      if (code === 0) return resolve();
      const how = signal ? `was killed by ${signal}` : `exited with status ${code}`;
      const said = stderr.trim().split('\n').slice(-3).join(' / ');
      reject(classedError(`${program} ${how}${said ? `: ${said}` : ''}; nothing committed`, signal ? `signal ${signal}` : `exit ${code}`));
    });
  });
  exited.catch(() => undefined); // awaited before the commit (or the abort below)
  const stop = () => child.kill('SIGTERM');
  c.signal.addEventListener('abort', stop, { once: true });
  const run = { source: job.source, host: c.host, tags: job.tags, tier: job.tier, compression: job.compression, clock: c.clock, parent };
  try {
    const snap = await runBackup(
      c.repo,
      c.pool,
      run,
      (uploader) => new Archiver(c.repo, { ...run, stdin: { name: spec.stdin_name, stream: stdout }, onWarning: c.warn }, uploader).run(),
      { beforeCommit: () => exited },
    );
    return { snapshot: snap.id, files: snap.stats.files, bytes: snap.stats.bytes, warnings: [] };
  } catch (e) {
    child.kill('SIGKILL');
    // the command's own failure explains a broken stream better than the stream does
    await exited;
    throw e;
  } finally {
    c.signal.removeEventListener('abort', stop);
  }
}
