import fs from 'node:fs';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { E2EResult, runE2E, scenarioRows, scenarioTitle } from './e2e-local.js';
import { microRows, microTitle, MicroResult, runMicro } from './micro.js';
import { cleanupTemps, machineInfo, mdTable, textTable } from './util.js';

const USAGE = `usage: node bench/dist/main.js [--quick | --full] [--json] [--report FILE.md] [--dir PATH]...

  (no flag)      micro-benchmarks + end-to-end on ~100 MiB of generated data (< ~4 min on 2 cores)
  --quick        shorter micro-benchmarks, ~30 MiB of data (< ~1 min)
  --full         ~300 MiB of data
  --size MIB     override the generated data size
  --dir PATH     also back up, re-back up and restore PATH (read only; repeatable)
  --json         print one JSON document on stdout instead of tables
  --report FILE  also write a Markdown report
  --no-micro, --no-e2e, --no-peers   skip parts (peers = restic and borg, run when on PATH)`;

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean' },
      full: { type: 'boolean' },
      size: { type: 'string' },
      json: { type: 'boolean' },
      report: { type: 'string' },
      dir: { type: 'string', multiple: true },
      'no-micro': { type: 'boolean' },
      'no-e2e': { type: 'boolean' },
      'no-peers': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (values.quick && values.full) throw new Error('--quick and --full exclude each other');
  const mode = values.quick ? 'quick' : values.full ? 'full' : 'default';
  const sizeMiB = values.size !== undefined ? Number(values.size) : undefined;
  if (sizeMiB !== undefined && !(sizeMiB > 0)) throw new Error(`--size takes a positive number of MiB, not ${values.size}`);
  for (const d of values.dir ?? []) if (!fs.existsSync(d) || !fs.statSync(d).isDirectory()) throw new Error(`--dir ${d}: not a directory`);

  // progress goes to stderr so that stdout holds only the tables (or the JSON document)
  const log = (line: string) => process.stderr.write(`${line}\n`);
  const started = new Date();
  const t0 = performance.now();
  const loadBefore = os.loadavg()[0];
  if (loadBefore > 0.5) log(`bench: load average ${loadBefore.toFixed(2)} before starting: other work on this machine will skew the figures`);

  let micro: MicroResult[] | undefined;
  if (!values['no-micro']) micro = await runMicro({ quick: Boolean(values.quick), log });
  let e2e: E2EResult | undefined;
  if (!values['no-e2e']) e2e = await runE2E({ mode, sizeMiB, dirs: values.dir ?? [], peers: !values['no-peers'], log });
  const total = (performance.now() - t0) / 1000;

  const machine = { ...machineInfo(), loadavg_1m_before: round2(loadBefore), loadavg_1m_after: round2(os.loadavg()[0]) };
  const failures = e2e?.failures ?? [];
  if (values.json) {
    process.stdout.write(
      JSON.stringify({ started: started.toISOString(), duration_s: total, mode, machine, micro: micro ?? null, e2e: e2e ?? null, ok: failures.length === 0, failures }, null, 2) + '\n',
    );
  } else {
    const out: string[] = [];
    out.push(
      `Keep benchmark (${mode}) — ${machine.cpu}, ${machine.cores} cores, ${machine.memory_gib} GiB, node ${machine.node}, ${machine.platform}; ${total.toFixed(0)} s; load average ${machine.loadavg_1m_before} before, ${machine.loadavg_1m_after} after`,
      '',
    );
    if (micro) {
      const { header, rows } = microRows(micro);
      out.push(textTable(header, rows, microTitle(Boolean(values.quick))), '');
    }
    if (e2e) {
      for (const s of e2e.scenarios) {
        const { header, rows } = scenarioRows(s);
        out.push(textTable(header, rows, scenarioTitle(s)));
        for (const k of s.skipped) out.push(k);
        for (const t of s.tools) out.push(`  ${t.tool} ${t.version}: ${t.settings}`);
        out.push('');
      }
      out.push(SENT_NOTE);
      out.push(`Peak RSS measured with ${e2e.rss_method === 'gnu-time' ? '/usr/bin/time -v' : e2e.rss_method === 'proc-poll' ? '/proc/<pid>/status VmHWM polling' : 'nothing (unavailable)'}; times are process wall times (start-up included), page cache warm.`);
    }
    process.stdout.write(out.join('\n') + '\n');
  }
  if (values.report) {
    fs.writeFileSync(values.report, markdown(mode, started, total, machine, micro, e2e));
    log(`report written to ${values.report}`);
  }
  if (failures.length) {
    for (const f of failures) log(`FAILED: ${f}`);
    return 1;
  }
  return 0;
}

const SENT_NOTE =
  'Bytes sent, reported: keep bytes_sent (sealed blobs added), restic summary data_added (restic < 0.16 counts it before compression), borg deduplicated_size; "repository growth" measures all tools the same way (pack/segment bytes on disk).';

const round2 = (n: number) => Math.round(n * 100) / 100;

function markdown(mode: string, started: Date, total: number, machine: ReturnType<typeof machineInfo> & { loadavg_1m_before: number; loadavg_1m_after: number }, micro?: MicroResult[], e2e?: E2EResult): string {
  const md: string[] = [
    `# Keep benchmark (${mode})`,
    '',
    `${started.toISOString()} — ${machine.cpu}, ${machine.cores} cores, ${machine.memory_gib} GiB RAM, node ${machine.node}, ${machine.platform}. Run took ${total.toFixed(0)} s; 1-minute load average ${machine.loadavg_1m_before} before, ${machine.loadavg_1m_after} after.`,
    '',
    'MB/s are 1e6 bytes per second of wall time. Data sits in the page cache; repositories and restore targets are under the temp dir.',
    '',
  ];
  if (micro) {
    const { header, rows } = microRows(micro);
    md.push('## Micro-benchmarks', '', microTitle(mode === 'quick') + '.', '', mdTable(header, rows), '');
  }
  if (e2e) {
    md.push('## End to end (local repository, real CLI processes)', '');
    for (const s of e2e.scenarios) {
      const { header, rows } = scenarioRows(s);
      const [title, ...rest] = scenarioTitle(s).split('\n');
      md.push(`### ${title.replace(/^End-to-end, local repository: /, '')}`, '', ...rest.map((l) => `- ${l.trim()}`), '', mdTable(header, rows), '');
      for (const k of s.skipped) md.push(`- ${k}`);
      for (const t of s.tools) md.push(`- ${t.tool} ${t.version}: ${t.settings}`);
      md.push('');
    }
    md.push(SENT_NOTE, '');
    md.push(
      `Peak RSS: ${e2e.rss_method === 'gnu-time' ? '`/usr/bin/time -v`' : e2e.rss_method === 'proc-poll' ? 'polling `/proc/<pid>/status` VmHWM' : 'not measured'}. Ratios are keep/peer for each figure; read them with the "better" column.`,
      '',
    );
    if (e2e.failures.length) md.push('## FAILURES', '', ...e2e.failures.map((f) => `- ${f}`), '');
  }
  return md.join('\n');
}

let interrupted = false;
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    cleanupTemps();
    process.exit(130);
  });
}

main().then(
  (code) => {
    cleanupTemps();
    process.exit(code);
  },
  (e: Error) => {
    cleanupTemps();
    process.stderr.write(`bench: error: ${e.stack ?? e.message}\n`);
    process.exit(1);
  },
);
