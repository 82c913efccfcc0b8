import { TIERS } from '@keep/core';
import * as v from 'valibot';
import { parseSize } from '../selection/size.js';
import { cronSchema, durationSchema } from '@keep/core/config';

/**
 * The shape of /etc/keep/agent.yaml. valibot rather than zod: its schemas are
 * plain functions esbuild tree-shakes, so the agent's one-file bundle (loaded
 * by every `keep` command) grows by a few KiB rather than zod's ~60; its
 * issues carry the key path config.ts turns into file:line:key.
 * Strict objects throughout: a misspelt key is an error, not a silent default.
 */

const duration = durationSchema;
const cron = cronSchema;

const positiveDuration = v.pipe(duration, v.check((ms) => ms >= 1000, 'must be at least 1s'));

export const scheduleSchema = v.strictObject({
  cron: v.optional(cron),
  every: v.optional(positiveDuration),
  jitter: v.optional(duration),
});

const strings = v.array(v.string('must be a string'), 'must be a list of strings');
const tier = v.picklist(Object.keys(TIERS) as (keyof typeof TIERS)[], `must be one of ${Object.keys(TIERS).join(', ')}`);
const compression = v.picklist(['none', 'low', 'medium', 'high'], 'must be none, low, medium or high');
const name = v.pipe(v.string('must be a string'), v.regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'must be letters, digits, ".", "_" or "-"'));
const size = v.pipe(
  v.union([v.string(), v.number()], 'must be a size such as 500k or 1G'),
  v.transform(String),
  v.check((s) => {
    try {
      parseSize(s, 'size');
      return true;
    } catch {
      return false;
    }
  }, 'must be a size such as 2048, 500k or 1G'),
);

/**
 * What every job takes: its name (unique), the snapshot's source (default: the name), tier and
 * schedule. The schedule also in the short forms of docs' minimal config, `schedule: "CRON"` and
 * `every: 15m` on the job itself (config.ts folds them into one).
 */
const common = {
  name,
  source: v.optional(v.string()),
  tags: v.optional(strings),
  tier: v.optional(tier),
  compression: v.optional(compression),
  schedule: v.optional(scheduleSchema),
  every: v.optional(positiveDuration),
};

export const filesJobSchema = v.strictObject({
  type: v.literal('files'),
  ...common,
  paths: v.pipe(strings, v.minLength(1, 'must name at least one path')),
  exclude: v.optional(strings),
  iexclude: v.optional(strings),
  exclude_file: v.optional(strings),
  iexclude_file: v.optional(strings),
  exclude_caches: v.optional(v.boolean('must be true or false')),
  exclude_if_present: v.optional(strings),
  exclude_larger_than: v.optional(size),
  one_file_system: v.optional(v.boolean('must be true or false')),
});

export const commandJobSchema = v.strictObject({
  type: v.literal('command'),
  ...common,
  argv: v.pipe(strings, v.minLength(1, 'must name the program to run')),
  stdin_name: v.string('must be the file name its output is stored under'),
});

/** Where the agent reaches PostgreSQL (psql's -h/-p/-U/-d); host is a name or a Unix socket directory. */
export const pgConnectionSchema = v.strictObject({
  host: v.optional(v.string('must be a host name')),
  socket: v.optional(v.string('must be a Unix socket directory')),
  port: v.optional(v.pipe(v.union([v.string(), v.number()], 'must be a port number'), v.transform(String), v.regex(/^\d{1,5}$/, 'must be a port number'))),
  user: v.optional(v.string('must be a user name')),
  dbname: v.optional(v.string('must be a database name')),
  pg_bin: v.optional(v.string('must be the directory holding psql')),
});

/** Base backups on the schedule, and the WAL `keep pg wal-push --source SOURCE` hands the agent (service/wal-archiver.ts). */
export const postgresJobSchema = v.strictObject({
  type: v.literal('postgres'),
  ...common,
  pgdata: v.pipe(v.string('must be the data directory'), v.minLength(1, 'must not be empty')),
  connection: v.optional(pgConnectionSchema),
  checkpoint: v.optional(v.picklist(['fast', 'spread'], 'must be fast or spread')),
});

/**
 * Restore drills of a source (service/drill-job.ts): its latest snapshot
 * restored into a scratch directory under `target` (default: the temp
 * directory) and verified, or with no_write read and verified only. Default
 * schedule: monthly, weekly for the critical tier.
 */
export const drillJobSchema = v.strictObject({
  type: v.literal('drill'),
  ...common,
  target: v.optional(v.pipe(v.string('must be a directory'), v.minLength(1, 'must not be empty'))),
  no_write: v.optional(v.boolean('must be true or false')),
  /** PostgreSQL sources: SQL statements that must each return true on the recovered database (`database`, default postgres) */
  checks: v.optional(v.array(v.pipe(v.string('must be SQL text'), v.minLength(1, 'must not be empty')), 'must be a list of SQL statements')),
  database: v.optional(v.pipe(v.string('must be a database name'), v.minLength(1, 'must not be empty'))),
});

export const jobSchema = v.variant('type', [filesJobSchema, commandJobSchema, postgresJobSchema, drillJobSchema], 'must be files, command, postgres or drill');

export const repositorySchema = v.strictObject({
  location: v.pipe(v.string('must be a directory or grpc(s)://host:port'), v.minLength(1, 'must not be empty')),
  token_file: v.optional(v.string()),
  password_file: v.optional(v.string()),
  password_command: v.optional(v.string()),
  ca_file: v.optional(v.string()),
});

/** The repository's secrets and CA may also sit at the top level, beside `repository: LOCATION` (config.ts moves them in). */
const repositoryFiles = {
  token_file: v.optional(v.string()),
  password_file: v.optional(v.string()),
  password_command: v.optional(v.string()),
  ca_file: v.optional(v.string()),
};

export const configSchema = v.strictObject({
  repository: repositorySchema,
  ...repositoryFiles,
  /** where the state file (and by default the status socket) live */
  state_dir: v.optional(v.string()),
  socket: v.optional(v.string()),
  host: v.optional(v.string()),
  jobs: v.pipe(v.array(jobSchema, 'must be a list of jobs'), v.minLength(1, 'must hold at least one job')),
});

export type AgentConfigText = v.InferOutput<typeof configSchema>;
export type RepositoryConfig = v.InferOutput<typeof repositorySchema>;
/** The config as the service reads it, short forms folded (config.ts). */
export type AgentConfigInput = Omit<AgentConfigText, keyof typeof repositoryFiles>;
export type JobConfig = v.InferOutput<typeof jobSchema>;
export type FilesJobConfig = v.InferOutput<typeof filesJobSchema>;
export type CommandJobConfig = v.InferOutput<typeof commandJobSchema>;
export type PostgresJobConfig = v.InferOutput<typeof postgresJobSchema>;
export type DrillJobConfig = v.InferOutput<typeof drillJobSchema>;
export type ScheduleConfig = v.InferOutput<typeof scheduleSchema>;
