import path from 'node:path';
import { DEFAULT_UNIT_DIR, EXIT, formatInstall, installJson, KeepError } from '@keep/core';
import { parse } from '../terminal/args.js';
import { printJson } from '../terminal/output.js';
import { AgentService } from '../service/agent-service.js';
import { ConfigError, DEFAULT_CONFIG, DEFAULT_STATE_DIR, Job, loadConfig } from '../service/config.js';
import { formatDuration, parseDuration } from '../service/duration.js';
import { askStatus } from '../service/status-socket.js';
import { installAgent } from '../install/install-agent.js';
import { USAGE as USAGES } from '../commands/usage.js';

const USAGE = USAGES.agent;


/** `keep agent ...`: the resident service (service/), its config check and its status. */
export async function agentCommand(argv: string[]): Promise<number | void> {
  const [sub, ...rest] = argv;
  switch (sub) {
    case 'check-config':
      return checkConfig(rest);
    case 'run':
      return run(rest);
    case 'status':
      return status(rest);
    case 'install':
      return install(rest);
    case undefined:
    case 'help':
      console.log(USAGE);
      return;
    default:
      throw new KeepError('INVALID_ARGUMENT', `unknown agent command ${sub}\n${USAGE}`);
  }
}

export function describeSchedule(job: Job): string {
  const s = job.schedule;
  const when = s.cron !== undefined ? `cron "${s.cron}"` : `every ${formatDuration(s.everyMs!)}`;
  return `${when}${s.jitterMs ? ` (jitter ${formatDuration(s.jitterMs)})` : ''}`;
}

function checkConfig(argv: string[]): number {
  const { values } = parse(argv, { config: { type: 'string' } });
  const file = values.config ?? DEFAULT_CONFIG;
  try {
    const { config, warnings } = loadConfig(file);
    if (values.json) {
      printJson({ ok: true, file, errors: [], warnings, jobs: config.jobs.map((j) => ({ name: j.name, type: j.spec.type, source: j.source, tier: j.tier ?? null, schedule: describeSchedule(j) })) });
    } else {
      for (const w of warnings) process.stderr.write(`keep: warning: ${w}\n`);
      console.log(`${file}: ok, ${config.jobs.length} job${config.jobs.length === 1 ? '' : 's'}`);
      for (const j of config.jobs) console.log(`  ${j.name}: ${j.spec.type}, source ${j.source}, ${describeSchedule(j)}${j.tier ? `, tier ${j.tier}` : ''}`);
    }
    return EXIT.OK;
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    if (values.json) printJson({ ok: false, file, errors: e.problems, warnings: [] });
    else for (const p of e.problems) process.stderr.write(`keep: error: ${p}\n`);
    return EXIT.USAGE;
  }
}

async function run(argv: string[]): Promise<number> {
  const { values } = parse(argv, { config: { type: 'string' }, 'state-dir': { type: 'string' }, grace: { type: 'string' } });
  const graceMs = values.grace ? parseDuration(values.grace, '--grace') : 60_000;
  return new AgentService({ configFile: values.config ?? DEFAULT_CONFIG, stateDir: values['state-dir'], graceMs }).run();
}

/** `keep agent install`: the systemd unit, an example config and the environment file (install/). */
function install(argv: string[]): void {
  const { values } = parse(argv, { config: { type: 'string' }, user: { type: 'string' }, prefix: { type: 'string' }, 'unit-dir': { type: 'string' }, grace: { type: 'string' }, 'dry-run': { type: 'boolean' } });
  const dryRun = Boolean(values['dry-run']);
  const graceMs = values.grace ? parseDuration(values.grace, '--grace') : 60_000;
  const r = installAgent({ config: values.config ?? DEFAULT_CONFIG, unitDir: values['unit-dir'] ?? DEFAULT_UNIT_DIR, prefix: values.prefix, user: values.user, graceMs, dryRun });
  if (values.json) printJson(installJson(r, dryRun));
  else console.log(formatInstall(r, dryRun));
}

/** The socket named by --socket, else the config's, else the state directory's default. */
function socketPath(v: { config?: string; 'state-dir'?: string; socket?: string }): string {
  if (v.socket) return v.socket;
  try {
    return loadConfig(v.config ?? DEFAULT_CONFIG, { stateDir: v['state-dir'] }).config.socket;
  } catch {
    return path.join(v['state-dir'] ?? DEFAULT_STATE_DIR, 'agent.sock');
  }
}

interface JobStatus {
  name: string;
  type: string;
  running: boolean;
  next_run: string | null;
  next_reason: string;
  last_run: { start: string; result: string; error?: string; files: number; bytes: number } | null;
  last_success: string | null;
}

async function status(argv: string[]): Promise<void> {
  const { values } = parse(argv, { config: { type: 'string' }, 'state-dir': { type: 'string' }, socket: { type: 'string' } });
  const report = (await askStatus(socketPath(values))) as { pid: number; config: string; started: string; jobs: JobStatus[] };
  if (values.json) {
    printJson(report);
    return;
  }
  console.log(`keep agent pid ${report.pid}, config ${report.config}, started ${report.started}`);
  for (const j of report.jobs) {
    const last = j.last_run ? `last ${j.last_run.start} ${j.last_run.result}${j.last_run.error ? ` (${j.last_run.error})` : ''}` : 'never run';
    const next = j.running ? 'running now' : `next ${j.next_run} (${j.next_reason})`;
    console.log(`  ${j.name} [${j.type}]: ${last}; ${next}`);
  }
}
