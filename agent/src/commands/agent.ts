import { EXIT, KeepError } from '@keep/core';
import { parse } from '../cli/args.js';
import { printJson } from '../cli/output.js';
import { ConfigError, DEFAULT_CONFIG, Job, loadConfig } from '../service/config.js';
import { formatDuration } from '../service/duration.js';

const USAGE = `usage: keep agent check-config [--config FILE] [--json]   validate the config without running (exit 0, or 2 with errors)
       keep agent run [--config FILE] [--state-dir DIR]       run the jobs on their schedules (foreground; SIGTERM stops, SIGHUP reloads)
       keep agent status [--config FILE] [--state-dir DIR] [--json]   the running agent's jobs, last and next runs
the config defaults to ${DEFAULT_CONFIG}`;

/** `keep agent ...`: the resident service (service/), its config check and its status. */
export async function agentCommand(argv: string[]): Promise<number | void> {
  const [sub, ...rest] = argv;
  switch (sub) {
    case 'check-config':
      return checkConfig(rest);
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
