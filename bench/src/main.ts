import fs from 'node:fs';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { grpcRows, grpcTargets, grpcTitlePrefix, Target, targetRows } from './e2e-grpc.js';
import { E2EResult, runE2E, scenarioRows, scenarioTitle } from './e2e-local.js';
import { killServers } from './keepd.js';
import { microRows, microTitle, MicroResult, runMicro } from './micro.js';
import { PruneBenchResult, pruneRows, pruneTitle, runPruneBench } from './prune.js';
import { runSyncBench, SyncBenchResult, syncRows } from './sync.js';
import { ObjectStorageBenchResult, objectStorageRows, runObjectStorageBench } from './object-storage.js';
import { RealResult, realNotes, realRows, realTitle, runRealData } from './real-e2e.js';
import { runRealProfile, StageTable, stageText } from './real-profile.js';
import { benchCacheDir } from './realdata.js';
import { RTO_DRILL_TITLE, rtoDrillTable, RtoResult, rtoEstimates, rtoRows, rtoTierRows, rtoTitle } from './rto.js';
import { cleanupTemps, machineInfo, mdTable, textTable } from './util.js';

const USAGE = `usage: node bench/dist/main.js [--quick | --full] [--json] [--report FILE.md] [--dir PATH]...

  (no flag)      micro-benchmarks; end-to-end on ~100 MiB of generated data (keep local, keep over
                 gRPC to a keepd on loopback, restic, borg; steps x3, medians); RTO estimates; prune
                 on ~120k blobs (~4-5 min on 2 cores)
  --quick        shorter micro-benchmarks, ~30 MiB of data, prune on ~30k blobs (~1-2 min)
  --full         ~300 MiB of data, prune on ~300k blobs
  --size MIB     override the generated data size
  --repeat N     run the initial backup, unchanged re-backup and restore N times per tool, interleaved
                 across tools, and report medians (default 3; 1 with --quick)
  --dir PATH     also back up, re-back up and restore PATH (read only; repeatable)
  --json         print one JSON document on stdout instead of tables
  --report FILE  also write a Markdown report
  --real         also the real-data set: 5 generations of npm releases (npm pack, cached under
                 --real-cache, default KEEP_BENCH_CACHE or ~/.cache/keep-bench), backed up in turn over
                 gRPC, last one restored; CPU-s and peak RSS of agent and keepd (issue 21)
  --real-profile DIR   also one run of the real-data set under node --cpu-prof (profiles in DIR) and
                 the CPU stage tables of agent and keepd, backup and restore
  --s3 s3://BUCKET/PREFIX [--s3-path-style]   also backup and restore through keepd onto that bucket
                 (a new sub-prefix; AWS_* environment) vs onto its data directory, same tree;
                 requests per GB stored (issue 20)
  --no-micro, --no-e2e, --no-grpc, --no-peers, --no-prune, --no-sync   skip parts
                 (peers = restic and borg, run when on PATH; --no-e2e also skips gRPC and bases no RTO)`;


interface GrpcSection {
  scenario: string;
  targets: Target[];
}

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
      'no-grpc': { type: 'boolean' },
      'no-peers': { type: 'boolean' },
      'no-prune': { type: 'boolean' },
      'no-sync': { type: 'boolean' },
      s3: { type: 'string' },
      's3-path-style': { type: 'boolean' },
      repeat: { type: 'string' },
      real: { type: 'boolean' },
      'real-cache': { type: 'string' },
      'real-profile': { type: 'string' },
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
  const repeat = values.repeat !== undefined ? Number(values.repeat) : mode === 'quick' ? 1 : 3;
  if (!Number.isInteger(repeat) || repeat < 1) throw new Error(`--repeat takes a whole number >= 1, not ${values.repeat}`);
  for (const d of values.dir ?? []) if (!fs.existsSync(d) || !fs.statSync(d).isDirectory()) throw new Error(`--dir ${d}: not a directory`);

  // progress goes to stderr so that stdout holds only the tables (or the JSON document)
  const log = (line: string) => process.stderr.write(`${line}\n`);
  const started = new Date();
  const t0 = performance.now();
  const loadBefore = os.loadavg()[0];
  if (loadBefore > 0.5) log(`bench: load average ${loadBefore.toFixed(2)} before starting: other work on this machine will skew the figures`);
  const sections: Record<string, { seconds: number; loadavg_1m_after: number }> = {};
  const section = async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
    const s0 = performance.now();
    const r = await fn();
    sections[name] = { seconds: round2((performance.now() - s0) / 1000), loadavg_1m_after: round2(os.loadavg()[0]) };
    log(`bench: ${name} done in ${sections[name].seconds.toFixed(1)} s (load average ${sections[name].loadavg_1m_after})`);
    return r;
  };

  let micro: MicroResult[] | undefined;
  if (!values['no-micro']) micro = await section('micro', () => runMicro({ quick: Boolean(values.quick), log }));
  let e2e: E2EResult | undefined;
  if (!values['no-e2e'])
    e2e = await section('e2e', () => runE2E({ mode, sizeMiB, dirs: values.dir ?? [], peers: !values['no-peers'], grpc: !values['no-grpc'], repeat, log }));
  const grpc: GrpcSection[] = (e2e?.scenarios ?? []).filter((s) => s.tools.some((t) => t.tool === 'keep-grpc')).map((s) => ({ scenario: s.name, targets: grpcTargets(s) }));
  const rto = rtoEstimates(e2e);
  const cache = values['real-cache'] ?? benchCacheDir();
  let real: RealResult | undefined;
  if (values.real) real = await section('real', () => runRealData({ cache, peers: !values['no-peers'], log }));
  let stages: StageTable[] | undefined;
  if (values['real-profile']) stages = await section('real-profile', () => runRealProfile({ cache, dir: values['real-profile']!, log }));
  let prune: PruneBenchResult | undefined;
  if (!values['no-prune']) prune = await section('prune', () => runPruneBench({ mode, log }));
  let sync: SyncBenchResult | undefined;
  if (!values['no-sync']) sync = await section('sync', () => runSyncBench({ mode, log }));
  let s3: ObjectStorageBenchResult | undefined;
  if (values.s3) s3 = await section('s3', () => runObjectStorageBench({ mode, sizeMiB, url: values.s3!, pathStyle: Boolean(values['s3-path-style']), log }));
  const total = (performance.now() - t0) / 1000;

  const machine = { ...machineInfo(), loadavg_1m_before: round2(loadBefore), loadavg_1m_after: round2(os.loadavg()[0]) };
  const failures = [...(e2e?.failures ?? []), ...(real?.failures ?? []).map((p) => `real data: ${p}`), ...(prune?.problems ?? []).map((p) => `prune: ${p}`), ...(sync?.problems ?? []).map((p) => `sync: ${p}`), ...(s3?.targets ?? []).flatMap((t) => t.problems.map((p) => `s3 ${t.target}: ${p}`))];
  if (values.json) {
    process.stdout.write(
      JSON.stringify(
        {
          started: started.toISOString(),
          duration_s: total,
          mode,
          machine,
          sections,
          micro: micro ?? null,
          e2e: e2e ?? null,
          grpc,
          rto,
          real: real ?? null,
          stages: stages ?? null,
          prune: prune ?? null,
          sync: sync ?? null,
          s3: s3 ?? null,
          ok: failures.length === 0,
          failures,
        },
        null,
        2,
      ) + '\n',
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
        for (const t of s.tools) if (t.tool !== 'keep-grpc') out.push(`  ${t.tool} ${t.version}: ${t.settings}`);
        out.push('');
      }
      out.push(SENT_NOTE);
      out.push(rssNote(e2e), '');
      for (const s of e2e.scenarios) {
        const g = grpc.find((x) => x.scenario === s.name);
        if (!g) continue;
        const { header, rows } = grpcRows(s);
        out.push(textTable(header, rows, scenarioTitle(s, grpcTitlePrefix)));
        const kg = s.tools.find((t) => t.tool === 'keep-grpc')!;
        out.push(`  keep-grpc: ${kg.settings}`);
        if (kg.server) out.push(`  ${serverNote(kg.server)}`);
        out.push('');
        const tr = targetRows(g.targets);
        out.push(textTable(tr.header, tr.rows, `Issue-3 targets, ${s.name} (keep over gRPC vs restic on the same data; computed from the measurements above)`));
        out.push(targetSummary(g.targets), '');
      }
      if (grpc.length) out.push(GRPC_NOTE, '');
    }
    if (rto.basis) {
      const r1 = rtoRows(rto);
      out.push(textTable(r1.header, r1.rows, rtoTitle(rto)));
      const r2 = rtoTierRows(rto);
      out.push('', textTable(r2.header, r2.rows));
      out.push('Assumptions:', ...rto.assumptions.map((a) => `  - ${a}`), '');
    } else out.push(rtoTitle(rto), '');
    if (rto.drills.length) {
      const d = rtoDrillTable(rto);
      out.push(textTable(d.header, d.rows, RTO_DRILL_TITLE), '');
    }
    if (real) {
      const { header, rows } = realRows(real);
      out.push(textTable(header, rows, realTitle(real)), ...realNotes(real).map((n) => `  ${n}`), '');
    }
    if (stages) out.push(stageText(stages), '');
    if (prune) {
      const { header, rows } = pruneRows(prune);
      out.push(textTable(header, rows, pruneTitle(prune)));
      for (const p of prune.problems) out.push(`  PROBLEM: ${p}`);
      out.push('');
    }
    if (sync) {
      const { header, rows } = syncRows(sync);
      out.push(textTable(header, rows, `Sync (issue 6): keepd sync from a keepd on loopback, generated ${mode} data`), '');
    }
    if (s3) {
      const { header, rows } = objectStorageRows(s3);
      out.push(textTable(header, rows, `Object storage (issue 20): backup and restore over gRPC through keepd, ${s3.data_mb.toFixed(0)} MB generated, onto ${values.s3} vs its data directory`), '');
    }
    out.push(`Sections: ${Object.entries(sections).map(([k, v]) => `${k} ${v.seconds.toFixed(0)} s (load ${v.loadavg_1m_after} after)`).join(', ')}`);
    if (failures.length) out.push('', 'FAILURES:', ...failures.map((f) => `  - ${f}`));
    process.stdout.write(out.join('\n') + '\n');
  }
  if (values.report) {
    fs.writeFileSync(values.report, markdown(mode, started, total, machine, sections, micro, e2e, grpc, rto, prune, sync, failures) + realMarkdown(real, stages));
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

const GRPC_NOTE =
  'keep-grpc: the keep agent with KEEP_REPO=grpc://127.0.0.1:PORT, a keepd serving the repository on the same machine (both share its cores; restic and borg run alone on local repositories). keepd figures come from /proc/<pid>/status VmHWM read after each agent command and then reset (clear_refs 5), and /proc/<pid>/stat CPU; "keepd counted bytes" are its Prometheus counters. Targets are met or missed on the measurements above only; a FAIL is not an error exit (only wrong restores and server/prune errors are).';

function rssNote(e2e: E2EResult): string {
  return `Peak RSS measured with ${e2e.rss_method === 'gnu-time' ? '/usr/bin/time -v' : e2e.rss_method === 'proc-poll' ? '/proc/<pid>/status VmHWM polling' : 'nothing (unavailable)'}; times are process wall times (start-up included), page cache warm.`;
}

function serverNote(s: NonNullable<E2EResult['scenarios'][number]['tools'][number]['server']>): string {
  return `keepd pid ${s.pid} on ${s.listen}: started in ${s.startup_s.toFixed(2)} s; peak RSS over its life ${s.peak_rss_kib === null ? '-' : (s.peak_rss_kib / 1024).toFixed(1)} MiB${s.peak_per_phase ? '' : ' (per-phase peaks are cumulative: VmHWM could not be reset)'}; CPU ${s.cpu_s === null ? '-' : s.cpu_s.toFixed(1)} s; SIGTERM -> ${s.exit} in ${s.stop_s.toFixed(2)} s`;
}

function targetSummary(ts: Target[]): string {
  const pass = ts.filter((t) => t.pass === true).length;
  const fail = ts.filter((t) => t.pass === false).length;
  const na = ts.filter((t) => t.pass === null).length;
  return `  targets: ${pass} PASS, ${fail} FAIL${na ? `, ${na} n/a` : ''}${fail ? ` (missed: ${ts.filter((t) => t.pass === false).map((t) => t.name).join('; ')})` : ''}`;
}

function realMarkdown(real: RealResult | undefined, stages: StageTable[] | undefined): string {
  const md: string[] = [];
  if (real) {
    const { header, rows } = realRows(real);
    md.push('## Real data (issue 21)', '', realTitle(real).replace(/^Real data \(issue 21\): /, '') + '.', '', mdTable(header, rows), '', ...realNotes(real).map((n) => `- ${n}`), '');
  }
  if (stages) {
    md.push('## CPU stage tables (issue 21)', '');
    for (const t of stages) md.push(`### ${t.title}`, '', mdTable(t.header, t.rows), '', ...(t.other.length ? [`"other", by file: ${t.other.join('; ')}`, ''] : []));
  }
  return md.join('\n');
}

const round2 = (n: number) => Math.round(n * 100) / 100;

type Machine = ReturnType<typeof machineInfo> & { loadavg_1m_before: number; loadavg_1m_after: number };

function markdown(
  mode: string,
  started: Date,
  total: number,
  machine: Machine,
  sections: Record<string, { seconds: number; loadavg_1m_after: number }>,
  micro: MicroResult[] | undefined,
  e2e: E2EResult | undefined,
  grpc: GrpcSection[],
  rto: RtoResult,
  prune: PruneBenchResult | undefined,
  sync: SyncBenchResult | undefined,
  failures: string[],
): string {
  const md: string[] = [
    `# Keep benchmark (${mode})`,
    '',
    `${started.toISOString()} — ${machine.cpu}, ${machine.cores} cores, ${machine.memory_gib} GiB RAM, node ${machine.node}, ${machine.platform}. Run took ${total.toFixed(0)} s; 1-minute load average ${machine.loadavg_1m_before} before, ${machine.loadavg_1m_after} after (${Object.entries(sections)
      .map(([k, v]) => `${k}: ${v.seconds.toFixed(0)} s, load ${v.loadavg_1m_after} after`)
      .join('; ')}).`,
    '',
    'MB/s are 1e6 bytes per second of wall time. Data sits in the page cache; repositories and restore targets are under the temp dir. Each restore goes to a fresh directory, and nothing is deleted there until the scenario ends (on a journal-less ext4 the kernel slows every file creation next to just-deleted inodes).',
    '',
  ];
  if (micro) {
    const { header, rows } = microRows(micro);
    md.push('## Micro-benchmarks', '', microTitle(mode === 'quick') + '.', '', mdTable(header, rows), '');
  }
  const titled = (t: string, prefix: RegExp) => {
    const [title, ...rest] = t.split('\n');
    return { title: title.replace(prefix, ''), rest: rest.map((l) => `- ${l.trim()}`) };
  };
  if (e2e) {
    md.push('## End to end (local repository, real CLI processes)', '');
    for (const s of e2e.scenarios) {
      const { header, rows } = scenarioRows(s);
      const { title, rest } = titled(scenarioTitle(s), /^End-to-end, local repository: /);
      md.push(`### ${title}`, '', ...rest, '', mdTable(header, rows), '');
      for (const k of s.skipped) md.push(`- ${k}`);
      for (const t of s.tools) if (t.tool !== 'keep-grpc') md.push(`- ${t.tool} ${t.version}: ${t.settings}`);
      md.push('');
    }
    md.push(SENT_NOTE, '', rssNote(e2e), '');
    if (grpc.length) {
      md.push('## End to end over gRPC (issue 3): keepd on loopback', '', GRPC_NOTE, '');
      for (const s of e2e.scenarios) {
        const g = grpc.find((x) => x.scenario === s.name);
        if (!g) continue;
        const { header, rows } = grpcRows(s);
        const { title, rest } = titled(scenarioTitle(s, grpcTitlePrefix), /^[^:]+: /);
        const kg = s.tools.find((t) => t.tool === 'keep-grpc')!;
        md.push(`### ${title}`, '', ...rest, `- keep-grpc: ${kg.settings}`, ...(kg.server ? [`- ${serverNote(kg.server)}`] : []), '', mdTable(header, rows), '');
        const tr = targetRows(g.targets);
        md.push(`#### Issue-3 targets (${s.name})`, '', mdTable(tr.header, tr.rows), '', targetSummary(g.targets).trim(), '');
      }
    }
  }
  md.push('## RTO estimates (issue 4)', '');
  if (rto.basis) {
    const r1 = rtoRows(rto);
    const r2 = rtoTierRows(rto);
    md.push(rtoTitle(rto).replace(/^RTO estimates \(issue 4\) — /, '') + '.', '', mdTable(r1.header, r1.rows), '', mdTable(r2.header, r2.rows), '', 'Assumptions:', '', ...rto.assumptions.map((a) => `- ${a}`), '');
  } else md.push(rtoTitle(rto), '');
  if (rto.drills.length) {
    const d = rtoDrillTable(rto);
    md.push('## Measured RTO (issue 18)', '', RTO_DRILL_TITLE + '.', '', mdTable(d.header, d.rows), '');
  }
  if (prune) {
    const { header, rows } = pruneRows(prune);
    md.push('## Prune (issue 5)', '', pruneTitle(prune).replace(/^Prune \(issue 5\) — /, '') + '.', '', mdTable(header, rows), '');
    for (const p of prune.problems) md.push(`- PROBLEM: ${p}`);
    md.push('');
  }
  if (sync) {
    const { header, rows } = syncRows(sync);
    md.push('## Sync (issue 6)', '', mdTable(header, rows), '');
  }
  if (failures.length) md.push('## FAILURES', '', ...failures.map((f) => `- ${f}`), '');
  return md.join('\n');
}

let interrupted = false;
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    killServers();
    cleanupTemps();
    process.exit(130);
  });
}

main().then(
  (code) => {
    killServers();
    cleanupTemps();
    process.exit(code);
  },
  (e: Error) => {
    killServers();
    cleanupTemps();
    process.stderr.write(`bench: error: ${e.stack ?? e.message}\n`);
    process.exit(1);
  },
);
