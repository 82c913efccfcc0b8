/**
 * A real keepd for the gRPC end-to-end tests: child processes, loopback
 * sockets, files on disk. Nothing here imports server or agent internals; the
 * raw-protocol tests load grpc-js, protobuf-es and the generated schemas the
 * same way keepd does (resolved from the server package).
 */
import { ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { KEEP_BIN, ROOT, RunResult, summaryLine } from './helpers.js';

export const KEEPD_BIN = path.join(ROOT, 'node_modules', '.bin', 'keepd');

// ---------------------------------------------------------------- processes

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface RunOpts {
  /** added to a clean environment (no KEEP_* from the parent) */
  env?: Record<string, string | undefined>;
  timeoutMs?: number;
  cwd?: string;
}

function cleanEnv(extra: Record<string, string | undefined> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('KEEP_')) env[k] = v;
  for (const [k, v] of Object.entries(extra)) if (v !== undefined) env[k] = v;
  return env;
}

export interface Running {
  child: ChildProcess;
  /** settles when the process has exited and its pipes are closed */
  result: Promise<RunResult & ExitInfo>;
}

/** Start `bin args` with a clean KEEP_* environment; stdout and stderr are collected. */
export function start(bin: string, args: string[], opts: RunOpts = {}): Running {
  const child = spawn(bin, args, { env: cleanEnv(opts.env), cwd: opts.cwd ?? ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout!.on('data', (b: Buffer) => out.push(b));
  child.stderr!.on('data', (b: Buffer) => err.push(b));
  const result = new Promise<RunResult & ExitInfo>((resolve, reject) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 100_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const stdoutBytes = Buffer.concat(out);
      resolve({ code, signal, stdout: stdoutBytes.toString(), stderr: Buffer.concat(err).toString(), stdoutBytes });
    });
  });
  return { child, result };
}

/** Run `keep ARGS` with exactly `env` (plus PATH etc.): {code, stdout, stderr}. */
export function runKeep(args: string[], env: Record<string, string | undefined>, opts: Omit<RunOpts, 'env'> = {}): Promise<RunResult & ExitInfo> {
  return start(KEEP_BIN, args, { ...opts, env: { KEEP_NO_PROGRESS: '1', ...env } }).result;
}

/** Start `keep ARGS` and hand back the child (to kill it mid-way). */
export function startKeep(args: string[], env: Record<string, string | undefined>): Running {
  return start(KEEP_BIN, args, { env: { KEEP_NO_PROGRESS: '1', ...env } });
}

/** Run `keepd ARGS`. */
export function runKeepd(args: string[], opts: RunOpts = {}): Promise<RunResult & ExitInfo> {
  return start(KEEPD_BIN, args, opts).result;
}

/** `keep ARGS --json` must succeed; its stdout parsed. */
export async function keepJson(args: string[], env: Record<string, string | undefined>): Promise<any> {
  const r = await runKeep([...args, '--json'], env);
  if (r.code !== 0) throw new Error(`keep ${args.join(' ')} exited ${r.code}\nstderr: ${r.stderr}\nstdout: ${r.stdout.slice(0, 2000)}`);
  // backup and restore: restic's JSON lines, whose result is the summary
  return r.stdout.startsWith('{"message_type":') ? summaryLine(r) : JSON.parse(r.stdout);
}

/** `keepd ARGS --json` must succeed; its stdout parsed. */
export async function keepdJson(args: string[], opts: RunOpts = {}): Promise<any> {
  const r = await runKeepd([...args, '--json'], opts);
  if (r.code !== 0) throw new Error(`keepd ${args.join(' ')} exited ${r.code}\nstderr: ${r.stderr}\nstdout: ${r.stdout.slice(0, 2000)}`);
  return JSON.parse(r.stdout);
}

// ---------------------------------------------------------------- repository and tokens

export async function keepdInit(data: string): Promise<{ repository: string }> {
  return keepdJson(['init', '--data', data]);
}

export interface Token {
  token: string;
  id: string;
  role: 'agent' | 'admin' | 'replica' | 'viewer';
  sources: string[];
  dedup: 'source' | 'repository';
}

export async function createToken(data: string, role: Token['role'], opts: { sources?: string[]; dedup?: Token['dedup'] } = {}): Promise<Token> {
  const args = ['token', 'create', '--role', role, '--data', data];
  for (const s of opts.sources ?? []) args.push('--source', s);
  if (role === 'agent' && !opts.sources?.length) args.push('--all-sources');
  if (opts.dedup) args.push('--dedup', opts.dedup);
  const t = (await keepdJson(args)) as Token;
  if (!/^keep_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/.test(t.token)) throw new Error(`unexpected token shape: ${t.token}`);
  return t;
}

/** The secret part of a token (what must never reach a log). */
export function tokenSecret(token: string): string {
  return token.split('_').slice(2).join('_');
}

// ---------------------------------------------------------------- keepd serve

export interface Keepd {
  data: string;
  port: number;
  metricsPort?: number;
  /** grpc://127.0.0.1:PORT (grpcs:// with TLS, host as given) */
  url: string;
  child: ChildProcess;
  /** the first log line, parsed */
  listening: Record<string, unknown>;
  /** everything keepd wrote so far, stdout then stderr */
  output(): string;
  /** has the process exited? */
  exited(): ExitInfo | undefined;
  /** SIGTERM (or another signal); resolves with the exit code */
  stop(signal?: NodeJS.Signals): Promise<ExitInfo>;
}

export interface ServeOptions {
  tls?: { cert: string; key: string; host?: string };
  metrics?: boolean;
  env?: Record<string, string | undefined>;
  /** more `keepd serve` flags (--upstream, --sync-replicas, ...) */
  args?: string[];
  /** start keepd with this soft open-file limit (`ulimit -S -n`) */
  softOpenFiles?: number;
}

const running = new Set<Keepd>();

/** SIGKILL every keepd still running (afterAll safety net). */
export async function killAllKeepd(): Promise<void> {
  await Promise.all([...running].map((k) => k.stop('SIGKILL').catch(() => undefined)));
}

process.once('exit', () => {
  for (const k of running) if (!k.exited()) k.child.kill('SIGKILL');
});

/** `keepd serve --data DIR --listen 127.0.0.1:0`; resolves once the listening line names the port. */
export function startKeepd(data: string, opts: ServeOptions = {}): Promise<Keepd> {
  const args = ['serve', '--data', data, '--listen', '127.0.0.1:0'];
  if (opts.tls) args.push('--tls-cert', opts.tls.cert, '--tls-key', opts.tls.key);
  if (opts.metrics) args.push('--metrics', '127.0.0.1:0');
  args.push(...(opts.args ?? []));
  const [bin, argv] = opts.softOpenFiles ? ['/bin/sh', ['-c', `ulimit -S -n ${opts.softOpenFiles} && exec "$0" "$@"`, KEEPD_BIN, ...args]] : [KEEPD_BIN, args];
  const child = spawn(bin, argv, { env: cleanEnv(opts.env), cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  let exit: ExitInfo | undefined;
  const closed = new Promise<ExitInfo>((resolve) =>
    child.on('close', (code, signal) => {
      exit = { code, signal };
      resolve(exit);
    }),
  );
  child.stderr!.on('data', (b: Buffer) => err.push(b));
  const output = () => Buffer.concat(out).toString() + Buffer.concat(err).toString();

  return new Promise<Keepd>((resolve, reject) => {
    let pending = '';
    let done = false;
    const timer = setTimeout(() => fail(new Error('keepd did not log "listening" within 20 s')), 20_000);
    const fail = (e: Error) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(new Error(`${e.message}\nkeepd output:\n${output()}`));
    };
    child.on('error', fail);
    void closed.then((x) => fail(new Error(`keepd exited (${x.code ?? x.signal}) before listening`)));
    child.stdout!.on('data', (b: Buffer) => {
      out.push(b);
      if (done) return;
      pending += b.toString();
      let nl: number;
      while ((nl = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        let rec: Record<string, unknown>;
        try {
          rec = JSON.parse(line);
        } catch {
          continue;
        }
        if (rec.msg !== 'listening') continue;
        done = true;
        clearTimeout(timer);
        const port = rec.port as number;
        const k: Keepd = {
          data,
          port,
          metricsPort: typeof rec.metrics === 'number' ? rec.metrics : undefined,
          url: `${opts.tls ? 'grpcs' : 'grpc'}://${opts.tls?.host ?? '127.0.0.1'}:${port}`,
          child,
          listening: rec,
          output,
          exited: () => exit,
          stop(signal: NodeJS.Signals = 'SIGTERM') {
            if (!exit) child.kill(signal);
            return closed.then((x) => {
              running.delete(k);
              return x;
            });
          },
        };
        running.add(k);
        resolve(k);
        return;
      }
    });
  });
}

/** keepd's /metrics text (started with `metrics: true`). */
export async function scrape(k: Keepd): Promise<string> {
  return (await fetch(`http://127.0.0.1:${k.metricsPort}/metrics`)).text();
}

/** One series' value in a /metrics text (`name{labels}` exactly as keepd writes it), or undefined. */
export function metric(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(series + ' '));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

/** The agent environment for a keepd: KEEP_REPO, KEEP_TOKEN, KEEP_PASSWORD (and KEEP_CA). */
export function agentEnv(k: Keepd, token: string | undefined, password = 'grpc test passphrase', extra: Record<string, string | undefined> = {}): Record<string, string | undefined> {
  return { KEEP_REPO: k.url, KEEP_TOKEN: token, KEEP_PASSWORD: password, ...extra };
}

// ---------------------------------------------------------------- the data directory

/** Total bytes of the pack files under DATA/packs/xx/. */
export function packBytes(data: string): number {
  let n = 0;
  const dir = path.join(data, 'packs');
  if (!fs.existsSync(dir)) return 0;
  for (const sub of fs.readdirSync(dir)) {
    const d = path.join(dir, sub);
    if (!fs.statSync(d).isDirectory()) continue;
    for (const f of fs.readdirSync(d)) if (f.endsWith('.pack')) n += fs.statSync(path.join(d, f)).size;
  }
  return n;
}

/** Every regular file under `dir`, recursively (symlinks not followed). */
export function allFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) out.push(p);
    }
  };
  walk(dir);
  return out;
}

/** Files under `dir` whose bytes contain `needle` (binary-safe). */
export function filesContaining(dir: string, needle: Buffer | string): string[] {
  const n = typeof needle === 'string' ? Buffer.from(needle) : needle;
  return allFiles(dir).filter((f) => fs.readFileSync(f).indexOf(n) >= 0);
}

/** A keepd's metric without labels, as its /metrics page shows it now (0 when absent). */
export async function keepdMetric(k: Keepd, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${k.metricsPort}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line ? Number(line.split(' ')[1]) : 0;
}

/** Poll `pred` every `everyMs` until it holds (or throw after `timeoutMs`). */
export async function waitFor(pred: () => boolean | Promise<boolean>, timeoutMs = 30_000, everyMs = 10): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await pred())) {
    if (Date.now() > until) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

// ---------------------------------------------------------------- raw gRPC

const serverRequire = createRequire(path.join(ROOT, 'server', 'package.json'));

/**
 * grpc-js, protobuf-es and the generated keep.v1 schemas, resolved from the
 * server package (the test package does not depend on them directly).
 */
export async function wire(): Promise<{ grpc: any; protobuf: any; proto: any }> {
  const load = (name: string) => import(pathToFileURL(serverRequire.resolve(name)).href);
  const [grpcMod, protobuf, proto] = await Promise.all([load('@grpc/grpc-js'), load('@bufbuild/protobuf'), load('@keep/proto')]);
  return { grpc: grpcMod.default ?? grpcMod, protobuf, proto };
}

/** One run as `keep agent run` reports it; the fields a test leaves out are a plain scheduled files run. */
export interface TestRunReport {
  id: string;
  source: string;
  result: 'success' | 'failure';
  job?: string;
  kind?: string;
  attempt?: number;
  startMs?: bigint;
  endMs?: bigint;
  errorClass?: string;
}

/** Sends `reports` to keepd at `address` (host:port) with `token`, as ReportRuns; resolves with the raw reply. */
export async function reportRuns(address: string, token: string, reports: TestRunReport[]): Promise<{ ok: true; body: Buffer } | ({ ok: false } & RawError)> {
  const { grpc, protobuf, proto } = await wire();
  const full = reports.map((r) => ({ job: r.source, kind: 'files', reason: 'scheduled', attempt: 1, startMs: 1n, endMs: 2n, errorClass: r.result === 'failure' ? 'exit 3' : '', ...r }));
  const body = protobuf.toBinary(proto.ReportRunsRequestSchema, protobuf.create(proto.ReportRunsRequestSchema, { reports: full }));
  const client = new RawClient(grpc, address, token);
  try {
    return await client.unary('ReportRuns', body);
  } finally {
    client.close();
  }
}

export interface RawError {
  code: number;
  details: string;
}

/**
 * A generic grpc-js client whose serializers pass raw bytes through, so a
 * test can send anything (garbage, oversized, hand-built messages).
 */
export class RawClient {
  private readonly client: any;

  constructor(
    private readonly grpc: any,
    address: string,
    private readonly token?: string,
  ) {
    this.client = new grpc.Client(address, grpc.credentials.createInsecure(), {
      'grpc.max_send_message_length': -1,
      'grpc.max_receive_message_length': -1,
    });
  }

  private md(): any {
    const md = new this.grpc.Metadata();
    if (this.token) md.set('authorization', `Bearer ${this.token}`);
    return md;
  }

  /** One unary call: resolves with the response bytes or an {code, details} error. */
  unary(method: string, body: Uint8Array): Promise<{ ok: true; body: Buffer } | ({ ok: false } & RawError)> {
    return new Promise((resolve) => {
      this.client.makeUnaryRequest(
        `/keep.v1.RepositoryService/${method}`,
        (b: Buffer) => b,
        (b: Buffer) => b,
        Buffer.from(body.buffer, body.byteOffset, body.byteLength),
        this.md(),
        { deadline: Date.now() + 60_000 },
        (err: any, res: Buffer) => resolve(err ? { ok: false, code: err.code, details: String(err.details ?? err.message) } : { ok: true, body: res }),
      );
    });
  }

  /** A bidi Upload stream: write raw requests, collect raw responses and the final status. */
  upload(requests: Uint8Array[]): Promise<{ responses: Buffer[]; code: number; details: string }> {
    return new Promise((resolve) => {
      const call = this.client.makeBidiStreamRequest(
        '/keep.v1.RepositoryService/Upload',
        (b: Buffer) => b,
        (b: Buffer) => b,
        this.md(),
        { deadline: Date.now() + 60_000 },
      );
      const responses: Buffer[] = [];
      call.on('data', (b: Buffer) => responses.push(b));
      call.on('error', () => undefined);
      call.on('status', (s: { code: number; details: string }) => resolve({ responses, code: s.code, details: s.details }));
      for (const r of requests) call.write(Buffer.from(r.buffer, r.byteOffset, r.byteLength));
      call.end();
    });
  }

  /** A ReadBlobs server stream. */
  readBlobs(body: Uint8Array): Promise<{ responses: Buffer[]; code: number; details: string }> {
    return new Promise((resolve) => {
      const call = this.client.makeServerStreamRequest(
        '/keep.v1.RepositoryService/ReadBlobs',
        (b: Buffer) => b,
        (b: Buffer) => b,
        Buffer.from(body.buffer, body.byteOffset, body.byteLength),
        this.md(),
        { deadline: Date.now() + 60_000 },
      );
      const responses: Buffer[] = [];
      call.on('data', (b: Buffer) => responses.push(b));
      call.on('error', () => undefined);
      call.on('status', (s: { code: number; details: string }) => resolve({ responses, code: s.code, details: s.details }));
    });
  }

  close(): void {
    this.client.close();
  }
}
