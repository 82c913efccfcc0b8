/**
 * WAL archiving latency: `keep pg wal-push` per 16 MiB segment, direct (a
 * process that unlocks the key with scrypt and connects, per segment) against
 * through a running `keep agent` (the segment's path over its socket; the
 * answer once committed), interleaved segment by segment so a loaded machine
 * weighs on every mode alike. --archive N first archives N 1 MiB segments
 * into the agent's source (the ack with a grown archive); --baseline BIN runs
 * a second agent from another build's `keep` on the same keepd, interleaved
 * too (an A/B of two commits). The agent's stage marks come from its log.
 * Optionally (--pgbench SECONDS) a real PostgreSQL under `pgbench -c 8 -j 2`
 * with archive_command = keep pg wal-push through the agent, watching the
 * archive_status/*.ready backlog (wal-pgbench.ts).
 *
 *   node bench/dist/wal-push.js [--segments 10] [--archive 200] [--baseline PATH/keep] [--pgbench 120] [--json]
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { killServers, procSample } from './keepd.js';
import { keepBinary, run } from './tools.js';
import { cleanupTemps, fmtNum, MiB, tempDir, textTable } from './util.js';
import { askAgent, own, WalAgent, walRepo } from './wal-agent.js';
import { runPgbenchArchive } from './wal-pgbench.js';

const SEGMENT = 16 * MiB;

/** A 16 MiB file that compresses like busy WAL (~half of each 8 KiB page new bytes), different per seed. */
function segment(seed: number): Buffer {
  const b = Buffer.alloc(SEGMENT);
  const noise = crypto.createHash('sha256').update(String(seed)).digest();
  for (let page = 0; page < SEGMENT; page += 8192) {
    crypto.randomFillSync(b, page, 4096);
    b.fill(noise, page + 4096, page + 8192);
  }
  return b;
}

const walName = (n: number, timeline = 1) => `0000000${timeline}000000${(0xa0 + Math.floor(n / 256)).toString(16).toUpperCase().padStart(2, '0')}000000${(n % 256).toString(16).toUpperCase().padStart(2, '0')}`;

function stats(ms: number[]): { median: number; p90: number; max: number } {
  const s = [...ms].sort((a, b) => a - b);
  return { median: s[Math.floor(s.length / 2)], p90: s[Math.min(s.length - 1, Math.floor(s.length * 0.9))], max: s[s.length - 1] };
}

const median = (xs: number[]) => stats(xs).median;
/** The mean: CPU is read in clock ticks (10 ms), so a median of a few pushes moves in whole ticks; the mean of 12 does not. */
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

/** One socket push timed, with the CPU the agent and keepd spent on it. */
async function ackOnce(agent: WalAgent, keepdPid: number, file: string, source: string): Promise<{ ms: number; cpuAgent: number; cpuKeepd: number }> {
  const c0 = [procSample(agent.pid).cpu_s ?? NaN, procSample(keepdPid).cpu_s ?? NaN];
  const t0 = performance.now();
  const a = await askAgent(agent.socket, file, source);
  const ms = performance.now() - t0;
  if (!a.ok || a.result?.already) throw new Error(`agent push failed: ${JSON.stringify(a)}`);
  return { ms, cpuAgent: (procSample(agent.pid).cpu_s ?? NaN) - c0[0], cpuKeepd: (procSample(keepdPid).cpu_s ?? NaN) - c0[1] };
}

/** `count` 1 MiB segments (timeline 2) into `source` through the agent, four at a time: a grown archive. */
async function growArchive(agent: WalAgent, pg_wal: string, source: string, count: number): Promise<void> {
  const names = Array.from({ length: count }, (_, i) => path.join(pg_wal, walName(i, 2)));
  let next = 0;
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      while (next < names.length) {
        const f = names[next++];
        const a = await askAgent(agent.socket, f, source);
        if (!a.ok) throw new Error(`growing the archive failed: ${JSON.stringify(a)}`);
      }
    }),
  );
}

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { segments: { type: 'string' }, archive: { type: 'string' }, baseline: { type: 'string' }, pgbench: { type: 'string' }, json: { type: 'boolean' } }, strict: true });
  const count = Number(values.segments ?? 10);
  const archive = Number(values.archive ?? 0);
  const dir = tempDir('wal');
  fs.chmodSync(dir, 0o755);
  const repo = await walRepo(dir);
  // a data directory the agents' jobs name; its pg_wal holds the segments pushed
  const pgdata = path.join(dir, 'pgdata');
  const pg_wal = path.join(pgdata, 'pg_wal');
  fs.mkdirSync(pg_wal, { recursive: true });
  fs.writeFileSync(path.join(pgdata, 'PG_VERSION'), '16\n');
  // distinct content per mode and segment: no mode finds another's chunks stored
  const modes = values.baseline ? 4 : 3;
  const files: string[] = [];
  for (let i = 0; i < modes * count; i++) {
    const f = path.join(pg_wal, walName(i));
    fs.writeFileSync(f, segment(i));
    files.push(f);
  }
  for (let i = 0; i < archive; i++) fs.writeFileSync(path.join(pg_wal, walName(i, 2)), segment(100_000 + i).subarray(0, MiB));
  own(pgdata);
  const keep = keepBinary();
  const rows: string[][] = [];
  const out: Record<string, unknown> = { segments: count, segment_bytes: SEGMENT, archive };

  const agent = await WalAgent.start(dir, repo, { source: 'agent', pgdata });
  const base = values.baseline ? await WalAgent.start(dir, repo, { source: 'baseline', pgdata, home: 'baseline', bin: values.baseline }) : undefined;
  try {
    if (archive) {
      await growArchive(agent, pg_wal, 'agent', archive);
      if (base) await growArchive(base, pg_wal, 'baseline', archive);
    }
    const direct: number[] = [];
    const cli: number[] = [];
    const ack: Awaited<ReturnType<typeof ackOnce>>[] = [];
    const baseAck: Awaited<ReturnType<typeof ackOnce>>[] = [];
    for (let i = 0; i < count; i++) {
      // direct: one process per segment, scrypt and connect each time
      direct.push((await run(keep, ['pg', 'wal-push', '--direct', '--source', 'direct', '--json', files[i]], { env: repo.env })).wall_s * 1000);
      // through the agent, as archive_command runs it: a process per segment, the push in the agent
      const r = await run(keep, ['pg', 'wal-push', '--socket', agent.socket, '--source', 'agent', '--json', files[count + i]], { env: repo.env });
      if (JSON.parse(r.stdout).via !== 'agent') throw new Error(`not pushed through the agent: ${r.stdout}`);
      cli.push(r.wall_s * 1000);
      // the agent's acknowledgement alone: request on the socket to the committed answer
      ack.push(await ackOnce(agent, repo.keepd.pid, files[2 * count + i], 'agent'));
      if (base) baseAck.push(await ackOnce(base, repo.keepd.pid, files[3 * count + i], 'baseline'));
    }
    const line = (what: string, ms: number[]) => {
      const s = stats(ms);
      out[what] = { ...s, samples: ms.map((m) => Math.round(m)) };
      rows.push([what, fmtNum(s.median / 1000, 3), fmtNum(s.p90 / 1000, 3), fmtNum(s.max / 1000, 3)]);
    };
    line('direct: keep pg wal-push --direct (process)', direct);
    line('agent: keep pg wal-push via socket (process)', cli);
    line('agent: socket request to ack (no process)', ack.map((a) => a.ms));
    // CPU per segment (all threads): what the ack costs on an idle machine, whatever the load of this one
    const cpu = { agent: median(ack.map((a) => a.cpuAgent)), keepd: median(ack.map((a) => a.cpuKeepd)), agent_mean: mean(ack.map((a) => a.cpuAgent)), keepd_mean: mean(ack.map((a) => a.cpuKeepd)) };
    out.cpu_per_segment_s = cpu;
    rows.push(['CPU per ack, median (agent / keepd)', `${fmtNum(cpu.agent, 3)} / ${fmtNum(cpu.keepd, 3)}`, '', '']);
    rows.push(['CPU per ack, mean (agent / keepd)', `${fmtNum(cpu.agent_mean, 3)} / ${fmtNum(cpu.keepd_mean, 3)}`, '', '']);
    if (base) {
      line('baseline agent: socket request to ack', baseAck.map((a) => a.ms));
      const b = { agent: median(baseAck.map((a) => a.cpuAgent)), keepd: median(baseAck.map((a) => a.cpuKeepd)), agent_mean: mean(baseAck.map((a) => a.cpuAgent)), keepd_mean: mean(baseAck.map((a) => a.cpuKeepd)) };
      out.baseline_cpu_per_segment_s = b;
      rows.push(['baseline CPU per ack (agent / keepd)', `${fmtNum(b.agent, 3)} / ${fmtNum(b.keepd, 3)}`, '', '']);
      rows.push(['baseline CPU per ack, mean (agent / keepd)', `${fmtNum(b.agent_mean, 3)} / ${fmtNum(b.keepd_mean, 3)}`, '', '']);
    }
    // the stage marks of the timed acks (the last `count` the agent logged), median of each
    const stageRow = (who: WalAgent | undefined, key: string, what: string) => {
      const marks = who?.stages().slice(-count) ?? [];
      if (!marks.length) return;
      const stage: Record<string, number> = {};
      for (const k of Object.keys(marks[0])) stage[k] = median(marks.map((m) => m[k]));
      out[key] = stage;
      rows.push([what, Object.entries(stage).map(([k, v]) => `${k} ${Math.round(v)}`).join(', '), '', '']);
    };
    stageRow(agent, 'stages_ms', 'agent stage ends, ms since request (median)');
    stageRow(base, 'baseline_stages_ms', 'baseline stage ends, ms since request (median)');
  } finally {
    await agent.stop();
    await base?.stop();
  }
  if (values.pgbench) out.pgbench = await runPgbenchArchive(dir, repo, Number(values.pgbench), (r) => rows.push(r));
  await repo.keepd.stop();
  if (values.json) console.log(JSON.stringify(out, null, 2));
  else console.log(textTable(['16 MiB WAL segment, keepd on loopback', 'median s', 'p90 s', 'max s'], rows, `wal-push latency (${count} segments per mode, archive of ${archive} more)`));
  return 0;
}

main()
  .then((code) => {
    cleanupTemps();
    process.exit(code);
  })
  .catch((e) => {
    console.error(e);
    killServers();
    cleanupTemps();
    process.exit(1);
  });
