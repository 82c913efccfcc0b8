import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { keepBinary } from './tools.js';
import { fmtNum } from './util.js';
import { own, WalAgent, WalRepo } from './wal-agent.js';

const IS_ROOT = process.getuid?.() === 0;
const PORT = 54391;

function pgBin(): string {
  const versions = fs.readdirSync('/usr/lib/postgresql').filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a));
  for (const v of versions) if (fs.existsSync(`/usr/lib/postgresql/${v}/bin/pgbench`)) return `/usr/lib/postgresql/${v}/bin`;
  throw new Error('no PostgreSQL with pgbench under /usr/lib/postgresql');
}

/** A PostgreSQL program, as the postgres user when this runs as root; resolves with its stdout. */
function pg(program: string, args: string[]): Promise<string> {
  const bin = path.join(pgBin(), program);
  const [cmd, argv] = IS_ROOT ? ['runuser', ['-u', 'postgres', '--', bin, ...args]] : [bin, args];
  return new Promise((resolve, reject) => {
    const c = spawn(cmd, argv, { cwd: '/', stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LC_ALL: 'C' } });
    let out = '';
    let err = '';
    c.stdout.on('data', (b: Buffer) => (out += b));
    c.stderr.on('data', (b: Buffer) => (err += b));
    c.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`${program} ${args.join(' ')} exited ${code}: ${err.slice(-2000)}`))));
  });
}

const sh = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/**
 * A real PostgreSQL (16 MiB segments) under `pgbench -c 8 -j 2` for `seconds`,
 * archive_command = keep pg wal-push through a running agent; samples the
 * number of archive_status/*.ready files (segments waiting to be archived)
 * every second, and after the load how long the backlog takes to drain.
 */
export async function runPgbenchArchive(dir: string, repo: WalRepo, seconds: number, row: (r: string[]) => void): Promise<Record<string, unknown>> {
  const base = path.join(dir, 'pgbench');
  const data = path.join(base, 'data');
  const sock = path.join(base, 'sock');
  fs.mkdirSync(sock, { recursive: true });
  own(base);
  await pg('initdb', ['-D', data, '-U', 'postgres', '-A', 'trust', '--no-sync', '-E', 'UTF8', '--locale=C']);
  const agentHome = path.join(dir, 'pgb');
  // where WalAgent.start's agent listens (it starts once the cluster exists; until then pushes go direct)
  const agentSocket = path.join(agentHome, 'agent', 'state', 'agent.sock');
  const vars = ['KEEP_REPO', 'KEEP_PASSWORD_FILE', 'KEEP_TOKEN_FILE'].map((k) => `${k}=${sh(repo.env[k]!)}`).join(' ');
  const archive = `${vars} ${sh(keepBinary())} pg wal-push --socket ${sh(agentSocket)} --source pgbench %p`;
  fs.appendFileSync(
    path.join(data, 'postgresql.conf'),
    `\nlisten_addresses = ''\nwal_level = replica\narchive_mode = on\narchive_command = '${archive.replace(/'/g, "''")}'\nshared_buffers = 128MB\nmax_wal_size = 1GB\n`,
  );
  const log = path.join(base, 'pg.log');
  fs.writeFileSync(log, '');
  own(log);
  await pg('pg_ctl', ['-D', data, '-l', log, '-w', '-o', `-p ${PORT} -k ${sock}`, 'start']);
  const conn = ['-h', sock, '-p', String(PORT), '-U', 'postgres'];
  const agent = await WalAgent.start(agentHome, repo, { source: 'pgbench', pgdata: data, connection: `connection: { socket: ${sock}, port: ${PORT}, user: postgres }` });
  if (agent.socket !== agentSocket) throw new Error(`the agent listens on ${agent.socket}, not ${agentSocket}`);
  const sql = async (q: string) => (await pg('psql', [...conn, '-X', '-A', '-t', '-q', '-c', q, 'postgres'])).trim();
  const ready = () => fs.readdirSync(path.join(data, 'pg_wal', 'archive_status')).filter((f) => f.endsWith('.ready')).length;
  try {
    await pg('pgbench', [...conn, '-i', '-s', '20', '-q', 'postgres']);
    const [archived0] = (await sql('SELECT archived_count FROM pg_stat_archiver')).split('|').map(Number);
    const samples: number[] = [];
    const sampler = setInterval(() => samples.push(ready()), 1000);
    const t0 = Date.now();
    const out = await pg('pgbench', [...conn, '-c', '8', '-j', '2', '-T', String(seconds), 'postgres']);
    const loadS = (Date.now() - t0) / 1000;
    const atEnd = ready();
    const drain0 = Date.now();
    while (ready() > 0 && Date.now() - drain0 < 600_000) await new Promise((r) => setTimeout(r, 200));
    const drainS = (Date.now() - drain0) / 1000;
    clearInterval(sampler);
    const [archived1, failed] = (await sql('SELECT archived_count, failed_count FROM pg_stat_archiver')).split('|').map(Number);
    const tps = Number(/tps = ([\d.]+)/.exec(out)?.[1] ?? NaN);
    const segments = archived1 - archived0;
    const third = Math.max(1, Math.floor(samples.length / 3));
    // the agent's own ack times (request to committed) and sent bytes of real WAL under load
    const pushes = agent.log.filter((l) => l.includes('"wal archived"')).map((l) => JSON.parse(l) as { duration_s: number; bytes: number; bytes_sent: number });
    const acks = pushes.map((p) => p.duration_s).sort((a, b) => a - b);
    const at = (q: number) => (acks.length ? acks[Math.min(acks.length - 1, Math.floor(q * acks.length))] : NaN);
    const result = {
      seconds: loadS,
      tps,
      segments_archived: segments,
      wal_mib_per_s: (segments * 16) / (loadS + drainS),
      failed_archive_commands: failed,
      ready_max: Math.max(0, ...samples),
      ready_first_third_max: Math.max(0, ...samples.slice(0, third)),
      ready_last_third_max: Math.max(0, ...samples.slice(-third)),
      ready_at_end: atEnd,
      drain_s: drainS,
      agent_pushes: pushes.length,
      ack_median_s: at(0.5),
      ack_p90_s: at(0.9),
      sent_per_segment: pushes.length ? pushes.reduce((n, p) => n + p.bytes_sent, 0) / pushes.reduce((n, p) => n + p.bytes, 0) : NaN,
      // why an archive_command failed, if one did (PostgreSQL retries it)
      failures: [...agent.log.filter((l) => l.includes('"wal push failed"')), ...fs.readFileSync(log, 'utf8').split('\n').filter((l) => /archive command failed|keep: /.test(l))].slice(0, 6),
    };
    row([`pgbench -c 8 -j 2, ${fmtNum(loadS, 0)} s: ${segments} segments, ${fmtNum(tps, 0)} tps`, `ready max ${result.ready_max}`, `last third ${result.ready_last_third_max}`, `drained ${fmtNum(drainS, 1)} s`]);
    row([`  agent's ack under that load (${pushes.length} real segments, ${fmtNum(result.sent_per_segment * 100, 0)}% of the WAL sent)`, fmtNum(at(0.5), 3), fmtNum(at(0.9), 3), fmtNum(acks.at(-1) ?? NaN, 3)]);
    return result;
  } finally {
    await pg('pg_ctl', ['-D', data, '-m', 'immediate', 'stop']).catch(() => undefined);
    await agent.stop();
  }
}
