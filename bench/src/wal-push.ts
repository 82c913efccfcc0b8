/**
 * WAL archiving latency: `keep pg wal-push` per 16 MiB segment, direct (a
 * process that unlocks the key with scrypt and connects, per segment) against
 * through a running `keep agent` (the segment's path over its socket; the
 * answer once committed). Optionally (--pgbench SECONDS) a real PostgreSQL
 * under `pgbench -c 8 -j 2` with archive_command = keep pg wal-push through
 * the agent, watching the archive_status/*.ready backlog (wal-pgbench.ts).
 *
 *   node bench/dist/wal-push.js [--segments 8] [--pgbench 120] [--json]
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

const walName = (n: number) => `00000001000000${(0xa0 + Math.floor(n / 256)).toString(16).toUpperCase().padStart(2, '0')}000000${(n % 256).toString(16).toUpperCase().padStart(2, '0')}`;

function stats(ms: number[]): { median: number; p90: number; max: number } {
  const s = [...ms].sort((a, b) => a - b);
  return { median: s[Math.floor(s.length / 2)], p90: s[Math.min(s.length - 1, Math.floor(s.length * 0.9))], max: s[s.length - 1] };
}

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { segments: { type: 'string' }, pgbench: { type: 'string' }, json: { type: 'boolean' } }, strict: true });
  const count = Number(values.segments ?? 8);
  const dir = tempDir('wal');
  fs.chmodSync(dir, 0o755);
  const repo = await walRepo(dir);
  // a data directory the agent's job names; its pg_wal holds the segments pushed
  const pgdata = path.join(dir, 'pgdata');
  fs.mkdirSync(path.join(pgdata, 'pg_wal'), { recursive: true });
  fs.writeFileSync(path.join(pgdata, 'PG_VERSION'), '16\n');
  const files: string[] = [];
  for (let i = 0; i < 3 * count; i++) {
    const f = path.join(pgdata, 'pg_wal', walName(i));
    fs.writeFileSync(f, segment(i));
    files.push(f);
  }
  own(pgdata);
  const keep = keepBinary();
  const rows: string[][] = [];
  const out: Record<string, unknown> = { segments: count, segment_bytes: SEGMENT };

  // direct: one process per segment, scrypt and connect each time
  const direct: number[] = [];
  for (const f of files.slice(0, count)) direct.push((await run(keep, ['pg', 'wal-push', '--direct', '--source', 'direct', '--json', f], { env: repo.env })).wall_s * 1000);

  const agent = await WalAgent.start(dir, repo, { source: 'agent', pgdata });
  try {
    // through the agent, as archive_command runs it: a process per segment, the push in the agent
    const cli: number[] = [];
    for (const f of files.slice(count, 2 * count)) {
      const r = await run(keep, ['pg', 'wal-push', '--socket', agent.socket, '--source', 'agent', '--json', f], { env: repo.env });
      if (JSON.parse(r.stdout).via !== 'agent') throw new Error(`not pushed through the agent: ${r.stdout}`);
      cli.push(r.wall_s * 1000);
    }
    // the agent's acknowledgement alone: request on the socket to the committed answer, one at a time, then all at once
    const ack: number[] = [];
    const cpu0 = [procSample(agent.pid).cpu_s ?? NaN, procSample(repo.keepd.pid).cpu_s ?? NaN];
    const half = files.slice(2 * count, 2 * count + Math.ceil(count / 2));
    for (const f of half) {
      const t0 = performance.now();
      const a = await askAgent(agent.socket, f, 'agent');
      if (!a.ok || a.result?.already) throw new Error(`agent push failed: ${JSON.stringify(a)}`);
      ack.push(performance.now() - t0);
    }
    // CPU per segment (all threads): what the ack costs on an idle machine, whatever the load of this one
    const cpu = [procSample(agent.pid).cpu_s ?? NaN, procSample(repo.keepd.pid).cpu_s ?? NaN].map((c, i) => (c - cpu0[i]) / half.length);
    const burst = files.slice(2 * count + half.length);
    const t0 = performance.now();
    const answers = await Promise.all(burst.map((f) => askAgent(agent.socket, f, 'agent')));
    const burstMs = performance.now() - t0;
    if (answers.some((a) => !a.ok)) throw new Error(`agent burst failed: ${JSON.stringify(answers.find((a) => !a.ok))}`);

    const line = (what: string, ms: number[]) => {
      const s = stats(ms);
      out[what] = { ...s, samples: ms.map((m) => Math.round(m)) };
      rows.push([what, fmtNum(s.median / 1000, 3), fmtNum(s.p90 / 1000, 3), fmtNum(s.max / 1000, 3)]);
    };
    line('direct: keep pg wal-push --direct (process)', direct);
    line('agent: keep pg wal-push via socket (process)', cli);
    line('agent: socket request to ack (no process)', ack);
    out.cpu_per_segment_s = { agent: cpu[0], keepd: cpu[1] };
    rows.push(['CPU per segment (agent / keepd)', `${fmtNum(cpu[0], 3)} / ${fmtNum(cpu[1], 3)}`, '', '']);
    out.burst = { segments: burst.length, total_s: burstMs / 1000, per_segment_s: burstMs / 1000 / burst.length };
    rows.push([`agent: ${burst.length} at once, per segment`, fmtNum(burstMs / 1000 / burst.length, 3), '', fmtNum(burstMs / 1000, 3) + ' total']);
  } finally {
    await agent.stop();
  }
  if (values.pgbench) out.pgbench = await runPgbenchArchive(dir, repo, Number(values.pgbench), (r) => rows.push(r));
  await repo.keepd.stop();
  if (values.json) console.log(JSON.stringify(out, null, 2));
  else console.log(textTable(['16 MiB WAL segment, keepd on loopback', 'median s', 'p90 s', 'max s'], rows, `wal-push latency (${count} segments per mode)`));
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
