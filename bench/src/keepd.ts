import { drillFigures } from './drill.js';
import { ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { BackupRun, KEEP_SETTINGS, keepBinary, keepdBinary, keepSummary, run, Tool } from './tools.js';
import { residentRuns } from './resident.js';
import { dirBytes } from './util.js';

/**
 * A real keepd serving a repository on loopback, and the `keep` agent talking
 * to it over grpc://. The server's memory is read from /proc/<pid>/status:
 * VmHWM (the kernel's peak RSS) after each agent command, then reset through
 * /proc/<pid>/clear_refs so that the next reading is that phase's own peak.
 */

const CLK_TCK = 100; // Linux USER_HZ, fixed at 100 on every mainstream architecture

export interface ProcSample {
  peak_rss_kib: number | null;
  rss_kib: number | null;
  cpu_s: number | null;
}

export function procSample(pid: number): ProcSample {
  const out: ProcSample = { peak_rss_kib: null, rss_kib: null, cpu_s: null };
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const hwm = /VmHWM:\s+(\d+) kB/.exec(status);
    const rss = /VmRSS:\s+(\d+) kB/.exec(status);
    if (hwm) out.peak_rss_kib = Number(hwm[1]);
    if (rss) out.rss_kib = Number(rss[1]);
    // fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    out.cpu_s = (Number(f[11]) + Number(f[12])) / CLK_TCK;
  } catch {
    /* no /proc, or the process is gone */
  }
  return out;
}

/** Reset the process's VmHWM to its current RSS (Linux >= 4.0); false when not possible. */
export function resetPeak(pid: number): boolean {
  try {
    fs.writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

export interface ServerPhase {
  phase: string;
  /** VmHWM read after the phase: the phase's own peak when the previous reading could reset it */
  peak_rss_kib: number | null;
  rss_kib: number | null;
  /** keepd CPU seconds used during the phase (user + system) */
  cpu_s: number | null;
  /** deltas of keepd's Prometheus counters over the phase */
  metrics: Record<string, number> | null;
}

export interface ServerReport {
  pid: number;
  listen: string;
  startup_s: number;
  /** true when every phase's peak is its own (VmHWM reset after each reading) */
  peak_per_phase: boolean;
  /** the largest VmHWM read, i.e. the server's peak RSS over its whole life (read before SIGTERM) */
  peak_rss_kib: number | null;
  cpu_s: number | null;
  phases: ServerPhase[];
  metrics: Record<string, number> | null;
  stop_s: number;
  exit: string;
  problems: string[];
}

/** Children still running: killed (by pid) if the bench is interrupted. */
const live = new Set<ChildProcess>();
export function killServers(): void {
  for (const c of live) {
    try {
      if (c.pid) process.kill(c.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  live.clear();
}

const COUNTERS = ['keep_blobs_stored_total', 'keep_bytes_stored_total', 'keep_blobs_deduplicated_total', 'keep_bytes_served_total', 'keep_rpc_requests_total', 'keep_upload_messages_total'];

export class Keepd {
  private readonly logTail: string[] = [];
  private exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private resettable = true;
  private lastCpu = 0;
  private lastMetrics: Record<string, number> | null = null;
  private maxHwm: number | null = null;
  readonly phases: ServerPhase[] = [];

  private constructor(
    private readonly child: ChildProcess,
    readonly port: number,
    private readonly metricsPort: number | undefined,
    readonly startup_s: number,
    readonly token: string,
  ) {
    this.exited = new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) resolve({ code: child.exitCode, signal: child.signalCode });
      else child.once('exit', (code, signal) => resolve({ code, signal }));
    });
  }

  get pid(): number {
    return this.child.pid!;
  }

  /**
   * keepd init + an agent token + keepd serve on 127.0.0.1:0 (with /metrics on another free port).
   * `again`: serve a data directory an earlier start made, with its token; `launch`: the command
   * before `serve` (e.g. node --cpu-prof server/dist/cli/main.js), the bin script by default;
   * `init`: more `keepd init` flags (--store s3://...).
   */
  static async start(data: string, opts: { again?: { token: string }; launch?: string[]; init?: string[] } = {}): Promise<Keepd> {
    const bin = keepdBinary();
    if (!fs.existsSync(bin)) throw new Error(`keepd binary not found at ${bin} (build with npx tsc -b tsconfig.build.json, or set KEEPD_BIN)`);
    let token = opts.again?.token;
    if (token === undefined) {
      await run(bin, ['init', '--data', data, ...(opts.init ?? []), '--json']);
      const tok = await run(bin, ['token', 'create', '--data', data, '--role', 'agent', '--all-sources', '--json']);
      token = (JSON.parse(tok.stdout) as { token: string }).token;
    }
    const t0 = performance.now();
    // the bin script execs node, so the pid we get is keepd's own
    const [cmd, ...pre] = opts.launch ?? [bin];
    const child = spawn(cmd, [...pre, 'serve', '--data', data, '--listen', '127.0.0.1:0', '--metrics', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    live.add(child);
    child.once('exit', () => live.delete(child));
    const tail: string[] = [];
    const listening = await new Promise<{ port: number; metrics?: number }>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`keepd serve did not report its port within 30 s:\n${tail.join('\n')}`)), 30_000);
      const onLine = (line: string) => {
        tail.push(line);
        if (tail.length > 40) tail.shift();
        if (!line.includes('"port"')) return;
        try {
          const j = JSON.parse(line) as { port?: number; metrics?: number };
          if (typeof j.port === 'number') {
            clearTimeout(timer);
            resolve({ port: j.port, metrics: j.metrics });
          }
        } catch {
          /* not JSON */
        }
      };
      for (const stream of [child.stdout!, child.stderr!]) {
        let buf = '';
        stream.setEncoding('utf8');
        stream.on('data', (d: string) => {
          buf += d;
          let nl: number;
          while ((nl = buf.indexOf('\n')) >= 0) {
            onLine(buf.slice(0, nl));
            buf = buf.slice(nl + 1);
          }
        });
      }
      child.once('error', (e) => (clearTimeout(timer), reject(e)));
      child.once('exit', (code, signal) => (clearTimeout(timer), reject(new Error(`keepd serve exited with ${code ?? signal} before listening:\n${tail.join('\n')}`))));
    });
    const k = new Keepd(child, listening.port, listening.metrics, (performance.now() - t0) / 1000, token);
    k.logTail.push(...tail);
    for (const stream of [child.stdout!, child.stderr!]) {
      stream.removeAllListeners('data');
      let buf = '';
      stream.on('data', (d: string) => {
        buf += d;
        const lines = buf.split('\n');
        buf = lines.pop()!;
        k.logTail.push(...lines);
        if (k.logTail.length > 40) k.logTail.splice(0, k.logTail.length - 40);
      });
    }
    k.lastCpu = procSample(child.pid!).cpu_s ?? 0;
    k.lastMetrics = await k.scrape();
    if (!resetPeak(child.pid!)) k.resettable = false;
    return k;
  }

  /** keepd's /metrics as text (null when unavailable). */
  async metricsText(): Promise<string | null> {
    if (!this.metricsPort) return null;
    return fetch(`http://127.0.0.1:${this.metricsPort}/metrics`)
      .then((r) => r.text())
      .catch(() => null);
  }

  /** Sums of keepd's counters over all label sets (null when /metrics is unavailable). */
  async scrape(): Promise<Record<string, number> | null> {
    if (!this.metricsPort) return null;
    try {
      const text = await (await fetch(`http://127.0.0.1:${this.metricsPort}/metrics`)).text();
      const out: Record<string, number> = Object.fromEntries(COUNTERS.map((c) => [c, 0]));
      for (const line of text.split('\n')) {
        const m = /^([a-z_]+)(\{[^}]*\})? ([0-9.eE+-]+)$/.exec(line);
        if (m && m[1] in out) out[m[1]] += Number(m[3]);
      }
      return out;
    } catch {
      return null;
    }
  }

  /** Read (then reset) the server's peak RSS and CPU after one agent command. */
  async phase(name: string): Promise<ServerPhase> {
    const s = procSample(this.pid);
    const metrics = await this.scrape();
    const delta =
      metrics && this.lastMetrics ? Object.fromEntries(Object.entries(metrics).map(([k, v]) => [k, v - (this.lastMetrics![k] ?? 0)])) : null;
    this.lastMetrics = metrics;
    const p: ServerPhase = { phase: name, peak_rss_kib: s.peak_rss_kib, rss_kib: s.rss_kib, cpu_s: s.cpu_s !== null ? s.cpu_s - this.lastCpu : null, metrics: delta };
    if (s.cpu_s !== null) this.lastCpu = s.cpu_s;
    if (s.peak_rss_kib !== null) this.maxHwm = Math.max(this.maxHwm ?? 0, s.peak_rss_kib);
    if (this.resettable && !resetPeak(this.pid)) this.resettable = false;
    this.phases.push(p);
    return p;
  }

  /** Final reading (VmHWM before SIGTERM), then SIGTERM and wait for a clean exit. */
  async stop(): Promise<ServerReport> {
    const problems: string[] = [];
    const last = procSample(this.pid);
    if (last.peak_rss_kib !== null) this.maxHwm = Math.max(this.maxHwm ?? 0, last.peak_rss_kib);
    const metrics = await this.scrape();
    const t0 = performance.now();
    this.child.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const res = await Promise.race([this.exited, new Promise<null>((r) => (timer = setTimeout(() => r(null), 45_000)))]);
    clearTimeout(timer);
    const stop_s = (performance.now() - t0) / 1000;
    let exit: string;
    if (res === null) {
      problems.push(`keepd (pid ${this.pid}) did not exit within 45 s of SIGTERM; killed`);
      this.child.kill('SIGKILL');
      await this.exited;
      exit = 'killed after 45 s';
    } else {
      exit = res.code !== null ? `exit ${res.code}` : `signal ${res.signal}`;
      if (res.code !== 0) problems.push(`keepd exited with ${exit} on SIGTERM (expected 0); last log lines:\n${this.logTail.slice(-8).join('\n')}`);
    }
    return {
      pid: this.pid,
      listen: `127.0.0.1:${this.port}`,
      startup_s: this.startup_s,
      peak_per_phase: this.resettable,
      peak_rss_kib: this.maxHwm,
      cpu_s: last.cpu_s,
      phases: this.phases,
      metrics,
      stop_s,
      exit,
      problems,
    };
  }
}

/** keep against a keepd on loopback: the agent speaks gRPC, keepd owns the repository directory. */
export function keepGrpcTool(scratch: string): Tool {
  const bin = keepBinary();
  if (!fs.existsSync(bin)) throw new Error(`keep binary not found at ${bin} (build with npx tsc -b tsconfig.build.json, or set KEEP_BIN)`);
  const servers = new Map<string, Keepd>();
  const server = (repo: string) => {
    const s = servers.get(repo);
    if (!s) throw new Error(`no keepd running for ${repo}`);
    return s;
  };
  const env = (repo: string) => {
    const s = server(repo);
    return { ...process.env, KEEP_REPO: `grpc://127.0.0.1:${s.port}`, KEEP_TOKEN: s.token, KEEP_PASSWORD: 'keep-bench-password', KEEP_NO_PROGRESS: '1', KEEP_CACHE_DIR: path.join(scratch, 'keep-cache') };
  };
  return {
    name: 'keep-grpc',
    version: 'workspace build',
    settings:
      `keepd serve on 127.0.0.1 (plaintext gRPC, agent token, dedup scope "source"); agent: ${KEEP_SETTINGS}`,
    async init(repo) {
      fs.mkdirSync(repo, { recursive: true });
      servers.set(repo, await Keepd.start(repo));
      const r = await run(bin, ['init', '--json'], { env: env(repo) });
      await server(repo).phase('init');
      return r;
    },
    async backup(repo, data, label): Promise<BackupRun> {
      const r = await run(bin, ['backup', data, '--json'], { env: env(repo) });
      await server(repo).phase(label);
      const j = keepSummary(r.stdout);
      return { ...r, reported_sent: typeof j.bytes_sent === 'number' ? j.bytes_sent : null };
    },
    async restore(repo, target) {
      const r = await run(bin, ['restore', 'latest', '--target', target, '--json'], { env: env(repo) });
      await server(repo).phase('restore');
      return r;
    },
    drill: (repo) => drillFigures(repo, env(repo)),
    async resident(repo, data, runs) {
      const e = env(repo);
      const r = await residentRuns({ dir: path.join(scratch, 'resident'), repoUrl: e.KEEP_REPO, token: e.KEEP_TOKEN, password: e.KEEP_PASSWORD, data, runs });
      await server(repo).phase('resident');
      return r;
    },
    packBytes: (repo) => dirBytes(path.join(repo, 'packs')),
    repoBytes: (repo) => dirBytes(repo),
    // index.mdb: LMDB's cache of the index segments and trailers, rebuilt by `keepd rebuild-index` (restic's cache is beside its repository)
    cacheInRepo: true,
    cacheBytes: (repo) => ['index.mdb', 'index.mdb-lock'].reduce((n, f) => n + (fs.statSync(path.join(repo, f), { throwIfNoEntry: false })?.size ?? 0), 0),
    async close(repo) {
      const s = server(repo);
      servers.delete(repo);
      return s.stop();
    },
  };
}
