import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Compression, defaultDrillIntervalMs, KeepError, Tier, TIERS } from '@keep/core';
import * as v from 'valibot';
import { ConfigSource, issueError, readConfigSource } from '@keep/core/config';
import { AgentConfigInput, AgentConfigText, configSchema, JobConfig, RepositoryConfig } from './config-schema.js';

import { DEFAULT_STATE_DIR } from './default-paths.js';

export { DEFAULT_CONFIG, DEFAULT_STATE_DIR } from './default-paths.js';

const HOUR = 3_600_000;

/**
 * A postgres job's default base backup interval. Its RPO is kept by WAL
 * archiving (archive_timeout from the tier, `keep pg config`); a base backup
 * bounds how much WAL a restore replays, so how long recovery takes: the
 * tighter the tier's RTO, the more often. Daily for standard and lower.
 */
export const BASE_BACKUP_EVERY: Record<Tier, number> = { critical: 6 * HOUR, high: 12 * HOUR, standard: 24 * HOUR, lower: 24 * HOUR };

export interface ScheduleSpec {
  cron?: string;
  everyMs?: number;
  jitterMs: number;
}

/** A job as the service runs it: defaults filled in, the schedule decided. */
export interface Job {
  name: string;
  source: string;
  tags: string[];
  tier?: Tier;
  compression: Compression;
  schedule: ScheduleSpec;
  /** the tier's recovery point objective (standard's when no tier is named): the retry budget */
  rpoMs: number;
  spec: JobConfig;
}

export interface AgentConfig {
  file: string;
  repository: AgentConfigInput['repository'];
  host: string;
  stateDir: string;
  socket: string;
  jobs: Job[];
}

/** check-config's and a reload's errors, each `file:line: key.path: message`. */
export class ConfigError extends KeepError {
  constructor(readonly problems: string[]) {
    super('INVALID_ARGUMENT', problems.join('\n'));
  }
}

/** Keys that would hold a secret inline, and what to write instead. */
const INLINE_SECRETS: Record<string, string> = {
  password: 'password_file (a file of mode 0600) or password_command',
  passphrase: 'password_file (a file of mode 0600) or password_command',
  token: 'token_file (a file of mode 0600)',
  secret: 'a file of mode 0600 named by a *_file key',
};

export interface Loaded {
  config: AgentConfig;
  warnings: string[];
}

/** Read and validate the config: the shape's problems thrown together (ConfigError), then those between keys and files; warnings returned. */
export function loadConfig(file: string, overrides: { stateDir?: string } = {}): Loaded {
  const { src, problems: unread } = readConfigSource(file);
  if (!src) throw new ConfigError(unread);
  const problems: string[] = [];
  for (const key of src.keys()) {
    const last = key[key.length - 1] as string;
    if (INLINE_SECRETS[last]) problems.push(src.error(key, `secrets are not written in the config: name one with ${INLINE_SECRETS[last]}`));
  }
  if (problems.length) throw new ConfigError(problems);
  const parsed = v.safeParse(configSchema, spellShortForms(src.doc.toJS()));
  if (!parsed.success) {
    throw new ConfigError(parsed.issues.map((i) => issueError(src, i)));
  }
  const input = foldShortForms(src, parsed.output, problems);
  const warnings: string[] = [];
  checkRepository(src, input, problems, warnings);
  const jobs = input.jobs.map((j, i) => resolveJob(src, j, i, problems));
  const seen = new Map<string, number>();
  jobs.forEach((j, i) => {
    if (seen.has(j.name)) problems.push(src.error(['jobs', i, 'name'], `a second job named ${j.name} (jobs[${seen.get(j.name)}] has that name)`));
    seen.set(j.name, i);
  });
  if (problems.length) throw new ConfigError(problems);
  const stateDir = overrides.stateDir ?? input.state_dir ?? DEFAULT_STATE_DIR;
  return {
    config: { file, repository: input.repository, host: input.host ?? os.hostname(), stateDir, socket: input.socket ?? path.join(stateDir, 'agent.sock'), jobs },
    warnings,
  };
}

/**
 * The minimal config's short forms (docs' CLI contract), spelt out before the shape is checked, so
 * its errors name the same keys: `repository: LOCATION` is `repository: { location }`, a job's
 * `schedule: "CRON"` is `schedule: { cron }`.
 */
function spellShortForms(doc: unknown): unknown {
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) return doc;
  const d = { ...(doc as Record<string, unknown>) };
  if (typeof d.repository === 'string') d.repository = { location: d.repository };
  if (Array.isArray(d.jobs)) d.jobs = d.jobs.map((j) => (j && typeof j === 'object' && typeof j.schedule === 'string' ? { ...j, schedule: { cron: j.schedule } } : j));
  return d;
}

/**
 * The rest of the short forms: token_file, password_file, password_command and ca_file beside
 * `repository` at the top level move into it; the same key in both places is a problem, not a
 * silent choice.
 */
function foldShortForms(src: ConfigSource, c: AgentConfigText, problems: string[]): AgentConfigInput {
  const { repository, token_file, password_file, password_command, ca_file, ...rest } = c;
  const r: RepositoryConfig = { ...repository };
  for (const [key, value] of Object.entries({ token_file, password_file, password_command, ca_file }) as [keyof RepositoryConfig, string | undefined][]) {
    if (value === undefined) continue;
    if (r[key] !== undefined) problems.push(src.error([key], `given here and in repository: give it once`));
    else r[key] = value;
  }
  return { ...rest, repository: r };
}

function checkRepository(src: ConfigSource, c: AgentConfigInput, problems: string[], warnings: string[]): void {
  const r = c.repository;
  // where the file wrote the key: in the repository mapping, or beside `repository: LOCATION`
  const at = (key: string) => (src.doc.hasIn(['repository', key]) ? ['repository', key] : [key]);
  if (r.password_file && r.password_command) problems.push(src.error(at('password_command'), 'give password_file or password_command, not both'));
  for (const key of ['token_file', 'password_file', 'ca_file'] as const) {
    const f = r[key];
    if (!f) continue;
    let mode: number;
    try {
      mode = fs.statSync(f).mode;
    } catch (e) {
      problems.push(src.error(at(key), `cannot read ${f}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`));
      continue;
    }
    // the CA certificate is public; the others are secrets
    if (key !== 'ca_file' && mode & 0o044) {
      warnings.push(src.error(at(key), `${f} is readable by ${mode & 0o004 ? 'every user' : 'its group'} (mode ${(mode & 0o777).toString(8)}); chmod 600 it`));
    }
  }
}

function resolveJob(src: ConfigSource, j: JobConfig, i: number, problems: string[]): Job {
  // the short form `every:` on the job itself
  const s = { ...j.schedule };
  if (j.every !== undefined) {
    if (s.cron !== undefined || s.every !== undefined) problems.push(src.error(['jobs', i, 'every'], 'give every or schedule, not both'));
    else s.every = j.every;
  }
  if (s.cron !== undefined && s.every !== undefined) problems.push(src.error(['jobs', i, 'schedule'], 'give cron or every, not both'));
  if (j.type === 'files') {
    for (const key of ['exclude_file', 'iexclude_file'] as const) {
      (j[key] ?? []).forEach((f, k) => {
        if (!fs.existsSync(f)) problems.push(src.error(['jobs', i, key, k], `no file ${f}`));
      });
    }
  }
  if (j.type === 'postgres') {
    if (j.connection?.host !== undefined && j.connection.socket !== undefined) problems.push(src.error(['jobs', i, 'connection', 'socket'], 'give host or socket, not both'));
    // pgdata is not looked at here: a config is checked before initdb too; the base backup and the WAL archiver check it when they run
    if (!path.isAbsolute(j.pgdata)) problems.push(src.error(['jobs', i, 'pgdata'], `must be an absolute path (archive_command's segments are checked to lie in its pg_wal)`));
  }
  const rpoMs = TIERS[j.tier ?? 'standard'].rpo_s * 1000;
  // no schedule: the tier's RPO apart, so a backup is never older than the objective allows (plus one run's time);
  // a postgres job's RPO is met by its WAL, so its base backups only bound the replay (BASE_BACKUP_EVERY)
  // a drill job: monthly, weekly for critical (core's defaultDrillIntervalMs, the default keepd judges drills by)
  const every = j.type === 'postgres' ? BASE_BACKUP_EVERY[j.tier ?? 'standard'] : j.type === 'drill' ? defaultDrillIntervalMs(j.tier) : rpoMs;
  const schedule: ScheduleSpec = { cron: s.cron, everyMs: s.cron === undefined ? (s.every ?? every) : undefined, jitterMs: s.jitter ?? 0 };
  if (schedule.everyMs !== undefined && schedule.jitterMs >= schedule.everyMs) problems.push(src.error(['jobs', i, 'schedule', 'jitter'], 'must be shorter than the interval'));
  return {
    name: j.name,
    source: j.source ?? j.name,
    tags: j.tags ?? [],
    tier: j.tier,
    compression: j.compression ?? (j.tier ? TIERS[j.tier].compression : 'medium'),
    schedule,
    rpoMs,
    spec: j,
  };
}
