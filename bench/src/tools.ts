import type { DrillFigures } from './drill.js';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ServerReport } from './keepd.js';
import { DEFAULT_CHUNKER } from '@keep/core';
import { dirBytes } from './util.js';

const kib = (n: number) => (n >= 1024 * 1024 ? `${n / (1024 * 1024)}M` : `${n / 1024}K`);
/** What a default `keep init` and `keep backup` use (the chunker sizes from the engine itself). */
export const KEEP_SETTINGS = `compression medium (zstd 3), AES-256-GCM, FastCDC ${kib(DEFAULT_CHUNKER.min)}/${kib(DEFAULT_CHUNKER.avg)}/${kib(DEFAULT_CHUNKER.max)}, scrypt N=2^15 r=8 p=3 (the default)`;

// ---- running a child process with wall time and peak RSS ----------------------

export interface RunResult {
  wall_s: number;
  /** peak resident set size of the process, KiB (null when it could not be measured) */
  peak_rss_kib: number | null;
  /** user + system CPU seconds of the process (GNU time only; null otherwise) */
  cpu_s: number | null;
  stdout: string;
  stderr: string;
}

type RssMethod = 'gnu-time' | 'proc-poll' | 'none';
let rssMethod: RssMethod | undefined;

/** `/usr/bin/time -v` when present and working, else polling /proc/<pid>/status VmHWM. */
export function detectRssMethod(): RssMethod {
  if (rssMethod) return rssMethod;
  rssMethod = fs.existsSync('/proc/self/status') ? 'proc-poll' : 'none';
  if (fs.existsSync('/usr/bin/time')) {
    const out = path.join(os.tmpdir(), `keep-bench-time-probe-${process.pid}`);
    const r = spawnSync('/usr/bin/time', ['-v', '-o', out, 'true'], { stdio: 'ignore' });
    try {
      if (r.status === 0 && /Maximum resident set size/.test(fs.readFileSync(out, 'utf8'))) rssMethod = 'gnu-time';
    } catch {
      /* not GNU time */
    }
    fs.rmSync(out, { force: true });
  }
  return rssMethod;
}

export class CommandError extends Error {}

let runSeq = 0;

/** Run a command to completion; throws CommandError (with its stderr) on a non-zero exit. */
export function run(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<RunResult> {
  const method = detectRssMethod();
  const timeOut = path.join(os.tmpdir(), `keep-bench-time-${process.pid}-${runSeq++}`);
  const [file, argv] = method === 'gnu-time' ? ['/usr/bin/time', ['-v', '-o', timeOut, cmd, ...args]] : [cmd, args];
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(file, argv, { env: opts.env ?? process.env, cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    let hwm = 0;
    let poll: NodeJS.Timeout | undefined;
    if (method === 'proc-poll' && child.pid) {
      const status = `/proc/${child.pid}/status`;
      const sample = () => {
        try {
          const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(status, 'utf8'));
          if (m) hwm = Math.max(hwm, Number(m[1]));
        } catch {
          /* exited */
        }
      };
      sample();
      poll = setInterval(sample, 10);
    }
    child.on('error', (e) => {
      if (poll) clearInterval(poll);
      reject(e);
    });
    child.on('close', (code, signal) => {
      const wall = (performance.now() - t0) / 1000;
      if (poll) clearInterval(poll);
      let rss: number | null = method === 'proc-poll' && hwm > 0 ? hwm : null;
      let cpu: number | null = null;
      if (method === 'gnu-time') {
        try {
          const report = fs.readFileSync(timeOut, 'utf8');
          const m = /Maximum resident set size \(kbytes\): (\d+)/.exec(report);
          if (m) rss = Number(m[1]);
          const u = /User time \(seconds\): ([\d.]+)/.exec(report);
          const s = /System time \(seconds\): ([\d.]+)/.exec(report);
          if (u && s) cpu = Number(u[1]) + Number(s[1]);
        } catch {
          /* no report */
        }
        fs.rmSync(timeOut, { force: true });
      }
      const stdout = Buffer.concat(out).toString();
      const stderr = Buffer.concat(err).toString();
      if (code !== 0) {
        reject(new CommandError(`${cmd} ${args.join(' ')} exited with ${code ?? signal}:\n${stderr.trim().split('\n').slice(-15).join('\n')}`));
        return;
      }
      resolve({ wall_s: wall, peak_rss_kib: rss, cpu_s: cpu, stdout, stderr });
    });
  });
}

// ---- the tools under test -------------------------------------------------------

export interface BackupRun extends RunResult {
  /** bytes the tool says it added to the repository (after dedup/compression), when it reports it */
  reported_sent: number | null;
}

export interface Tool {
  name: 'keep' | 'keep-grpc' | 'restic' | 'borg';
  version: string;
  /** settings in effect (defaults of each tool) */
  settings: string;
  init(repo: string): Promise<RunResult>;
  backup(repo: string, data: string, label: string): Promise<BackupRun>;
  /** restore `label` (the newest backup) into `target`; files land at target/<absolute source path> */
  restore(repo: string, target: string, label: string): Promise<RunResult>;
  /** bytes of pack/segment files: the stored data proper */
  packBytes(repo: string): number;
  /** everything in the repository directory (indexes, keys, snapshots...) */
  repoBytes(repo: string): number;
  /** the local cache a tool keeps beside (restic's cache directory) or inside (keepd's index.mdb, rebuildable) its repository */
  cacheBytes?(repo: string): number;
  /** the cache is inside the repository directory (keepd): repoBytes counts it */
  cacheInRepo?: boolean;
  /** tools with a server process (keep-grpc): stop it and report what it used */
  close?(repo: string): Promise<ServerReport>;
  /** keep-grpc: a `keep drill` of the newest snapshot and keepd's RTO figures from it (drill.ts) */
  drill?(repo: string): Promise<DrillFigures | undefined>;
  /** keep-grpc: `runs` scheduled backups of `data` by a resident `keep agent run` (resident.ts) */
  resident?(repo: string, data: string, runs: number): Promise<ResidentRuns>;
}

/** Backups a resident agent ran on its schedule: each run's time (its own log's duration_s) and the agent's CPU per run. */
export interface ResidentRuns {
  durations_s: number[];
  cpu_s_per_run: number | null;
  peak_rss_kib: number | null;
}

const PASSWORD = 'keep-bench-password';

/** The keep binary: KEEP_BIN, else node_modules/.bin/keep at the workspace root. */
export function keepBinary(): string {
  if (process.env.KEEP_BIN) return process.env.KEEP_BIN;
  const here = path.dirname(fileURLToPath(import.meta.url)); // bench/dist
  return path.resolve(here, '../../node_modules/.bin/keep');
}

/** The keepd binary: KEEPD_BIN, else node_modules/.bin/keepd at the workspace root. */
export function keepdBinary(): string {
  if (process.env.KEEPD_BIN) return process.env.KEEPD_BIN;
  const here = path.dirname(fileURLToPath(import.meta.url)); // bench/dist
  return path.resolve(here, '../../node_modules/.bin/keepd');
}

/** keep backup/restore --json: restic's JSON lines, whose last is the "summary" message. */
export function keepSummary(stdout: string): Record<string, unknown> {
  try {
    const last = JSON.parse(stdout.trim().split('\n').at(-1)!) as Record<string, unknown>;
    if (last.message_type !== 'summary') throw new Error('no summary');
    return last;
  } catch {
    throw new CommandError(`expected JSON lines ending in a summary on stdout, got: ${stdout.slice(-300)}`);
  }
}

/** keep's cache (remembered KDF parameters, startup/early-kek.ts) lives in the run's scratch space, like restic's. */
export function keepTool(scratch: string): Tool {
  const bin = keepBinary();
  if (!fs.existsSync(bin)) throw new Error(`keep binary not found at ${bin} (build with npx tsc -b tsconfig.build.json, or set KEEP_BIN)`);
  const env = (repo: string) => ({ ...process.env, KEEP_REPO: repo, KEEP_PASSWORD: PASSWORD, KEEP_NO_PROGRESS: '1', KEEP_CACHE_DIR: path.join(scratch, 'keep-cache') });
  return {
    name: 'keep',
    version: 'workspace build',
    settings: KEEP_SETTINGS,
    init: (repo) => run(bin, ['init', '--json'], { env: env(repo) }),
    async backup(repo, data) {
      const r = await run(bin, ['backup', data, '--json'], { env: env(repo) });
      const j = keepSummary(r.stdout);
      return { ...r, reported_sent: typeof j.bytes_sent === 'number' ? j.bytes_sent : null };
    },
    restore: (repo, target) => run(bin, ['restore', 'latest', '--target', target, '--json'], { env: env(repo) }),
    packBytes: (repo) => dirBytes(path.join(repo, 'packs')),
    repoBytes: (repo) => dirBytes(repo),
  };
}

function probe(cmd: string, args: string[]): string | null {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.error || r.status !== 0) return null;
  return (r.stdout || r.stderr).trim().split('\n')[0];
}

/** restic, when on PATH. */
export function resticTool(scratch: string): Tool | string {
  const version = probe('restic', ['version']);
  if (!version) return 'restic not installed: skipped';
  const env = (repo: string) => ({ ...process.env, RESTIC_REPOSITORY: repo, RESTIC_PASSWORD: PASSWORD, RESTIC_CACHE_DIR: path.join(scratch, 'restic-cache') });
  return {
    name: 'restic',
    version,
    settings: 'defaults: repository v2, compression auto (zstd), AES-256-CTR + Poly1305-AES, Rabin chunker 512K/1M/8M, scrypt calibrated at init (~0.4 s per command here, e.g. N=2^15 r=8 p=4)',
    init: (repo) => run('restic', ['init'], { env: env(repo) }),
    async backup(repo, data) {
      const r = await run('restic', ['backup', '--json', '--host', 'keep-bench', data], { env: env(repo) });
      let sent: number | null = null;
      for (const line of r.stdout.split('\n')) {
        if (!line.includes('"summary"')) continue;
        try {
          const j = JSON.parse(line) as { message_type?: string; data_added?: number; data_added_packed?: number };
          if (j.message_type === 'summary') sent = j.data_added_packed ?? j.data_added ?? null;
        } catch {
          /* a status line */
        }
      }
      return { ...r, reported_sent: sent };
    },
    restore: (repo, target) => run('restic', ['restore', 'latest', '--host', 'keep-bench', '--target', target], { env: env(repo) }),
    packBytes: (repo) => dirBytes(path.join(repo, 'data')),
    repoBytes: (repo) => dirBytes(repo),
    cacheBytes: () => dirBytes(path.join(scratch, 'restic-cache')),
  };
}

/** borg, when on PATH. */
export function borgTool(scratch: string): Tool | string {
  const version = probe('borg', ['--version']);
  if (!version) return 'borg not installed: skipped';
  const env = () => ({
    ...process.env,
    BORG_PASSPHRASE: PASSWORD,
    BORG_BASE_DIR: path.join(scratch, 'borg-base'),
    BORG_RELOCATED_REPO_ACCESS_IS_OK: 'yes',
    BORG_DISPLAY_PASSPHRASE: 'no',
  });
  return {
    name: 'borg',
    version,
    settings: 'repokey-blake2 (AES-256-CTR + keyed BLAKE2b), default compression lz4, buzhash 512K/2M/8M',
    init: (repo) => run('borg', ['init', '--encryption=repokey-blake2', repo], { env: env() }),
    async backup(repo, data, label) {
      const r = await run('borg', ['create', '--json', `${repo}::${label}`, data], { env: env() });
      let sent: number | null = null;
      try {
        const j = JSON.parse(r.stdout) as { archive?: { stats?: { deduplicated_size?: number } } };
        sent = j.archive?.stats?.deduplicated_size ?? null;
      } catch {
        /* older borg without --json */
      }
      return { ...r, reported_sent: sent };
    },
    // borg extracts into the current directory, paths without the leading '/'
    restore: (repo, target, label) => {
      fs.mkdirSync(target, { recursive: true });
      return run('borg', ['extract', `${repo}::${label}`], { env: env(), cwd: target });
    },
    packBytes: (repo) => dirBytes(path.join(repo, 'data')),
    repoBytes: (repo) => dirBytes(repo),
  };
}
