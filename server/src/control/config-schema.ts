import { TIERS } from '@keep/core';
import { cronSchema, durationSchema } from '@keep/core/config';
import * as v from 'valibot';

/**
 * The shape of /etc/keep/keepd.yaml (valibot, as the agent's config):
 * strict objects throughout, so a misspelt key is an error naming its line.
 */

const duration = v.pipe(durationSchema, v.check((ms) => ms > 0, 'must be longer than 0'));
const cron = cronSchema;

/** When a maintenance task runs: a cron expression or a fixed period, on keepd's clock. */
const schedule = v.pipe(
  v.strictObject({ cron: v.optional(cron), every: v.optional(duration) }),
  v.check((s) => (s.cron === undefined) !== (s.every === undefined), 'give cron or every, one of them'),
);

const tier = v.picklist(Object.keys(TIERS) as (keyof typeof TIERS)[], `must be one of ${Object.keys(TIERS).join(', ')}`);
const count = v.pipe(v.number('must be a number'), v.integer('must be a whole number'), v.minValue(-1, 'must be -1 (all) or more'));
const within = v.pipe(v.string('must be a restic duration such as 30d or 1y2m'), v.regex(/^(\d+[ymdh])+$/, 'must be a restic duration such as 30d or 1y2m'));

/** restic's keep_* options; `tier` for the tier's preset. */
const retention = v.union(
  [
    v.literal('tier'),
    v.strictObject({
      keep_last: v.optional(count),
      keep_hourly: v.optional(count),
      keep_daily: v.optional(count),
      keep_weekly: v.optional(count),
      keep_monthly: v.optional(count),
      keep_yearly: v.optional(count),
      keep_within: v.optional(within),
      keep_within_hourly: v.optional(within),
      keep_within_daily: v.optional(within),
      keep_within_weekly: v.optional(within),
      keep_within_monthly: v.optional(within),
      keep_within_yearly: v.optional(within),
      keep_tag: v.optional(v.array(v.string())),
    }),
  ],
  'must be "tier" or a mapping of keep_* options',
);

export const sourcePolicySchema = v.strictObject({
  /** a source name, or a glob (* and ?) */
  match: v.pipe(v.string('must be a source name or a glob such as "db-*"'), v.minLength(1, 'must not be empty')),
  tier: v.optional(tier),
  /** the expected backup interval; default: the tier's RPO */
  rpo: v.optional(duration),
  interval: v.optional(duration),
  retention: v.optional(retention),
  replicas: v.optional(v.strictObject({ count: v.pipe(v.number('must be a number'), v.integer(), v.minValue(0)), mode: v.optional(v.picklist(['sync', 'async'], 'must be sync or async')) })),
  drill: v.optional(v.strictObject({ interval: v.optional(duration), rto: v.optional(duration) })),
});

const percent = v.pipe(
  v.union([v.string(), v.number()], 'must be a percentage such as 5%'),
  v.transform((s) => Number(String(s).replace(/%$/, ''))),
  v.check((n) => n > 0 && n <= 100, 'must be a percentage in (0, 100]'),
);

/** Where alerts go: a generic JSON webhook, a Slack incoming webhook, or an Alertmanager (POST /api/v2/alerts). */
export const receiverSchema = v.strictObject({
  name: v.pipe(v.string('must be a name'), v.regex(/^[A-Za-z0-9_.-]+$/, 'must be letters, digits, _ . -')),
  type: v.picklist(['webhook', 'slack', 'alertmanager'], 'must be webhook, slack or alertmanager'),
  url: v.pipe(v.string('must be a URL'), v.url('must be a URL such as https://hooks.example/keep')),
  /** a file of "Name: value" header lines, read at each delivery (the secret stays out of keepd.yaml) */
  headers_file: v.optional(v.string('must be a file path')),
});

export const alertsSchema = v.strictObject({
  receivers: v.optional(v.array(receiverSchema, 'must be a list of receivers'), []),
  /** the short form of docs' minimal keepd.yaml: generic JSON webhooks, named webhook-1, webhook-2... (config.ts) */
  webhooks: v.optional(
    v.array(v.strictObject({ url: receiverSchema.entries.url, headers_file: receiverSchema.entries.headers_file }), 'must be a list of webhooks, each with url'),
  ),
  /** a firing alert is sent again after this long (default 4h) */
  repeat_interval: v.optional(duration),
  /** the first retry of a failed delivery (default 1s); doubling up to retry_max (default 5m) */
  retry_initial: v.optional(duration),
  retry_max: v.optional(duration),
});

export const keepdConfigSchema = v.strictObject({
  watchdog: v.optional(
    v.strictObject({
      interval: v.optional(duration),
      /** evaluations a new state must hold before it is taken */
      hysteresis: v.optional(v.pipe(v.number('must be a number'), v.integer(), v.minValue(1, 'must be at least 1'))),
      /** consecutive failed runs that make a source failing */
      failures: v.optional(v.pipe(v.number('must be a number'), v.integer(), v.minValue(1, 'must be at least 1'))),
      /** the window the failure rate is computed over */
      failure_window: v.optional(duration),
      /** days until full below which storage is a warning */
      storage_warn_days: v.optional(v.pipe(v.number('must be a number'), v.minValue(0))),
    }),
  ),
  sources: v.optional(v.array(sourcePolicySchema, 'must be a list of source policies')),
  maintenance: v.optional(
    v.strictObject({
      forget_prune: v.optional(v.strictObject({ schedule })),
      check: v.optional(v.strictObject({ schedule, read_data_subset: v.optional(percent) })),
      /** a replica pulling from its upstreams on a schedule, inside keepd serve (instead of --upstream's continuous following) */
      sync: v.optional(
        v.strictObject({
          schedule,
          upstreams: v.pipe(
            v.array(v.pipe(v.string('must be grpc://HOST:PORT or grpcs://HOST:PORT'), v.regex(/^grpcs?:\/\/[^/\s]+$/, 'must be grpc://HOST:PORT or grpcs://HOST:PORT')), 'must be a list of upstream keepd addresses'),
            v.minLength(1, 'must name at least one upstream'),
          ),
          /** only this source's snapshots (default: all) */
          source: v.optional(v.pipe(v.string(), v.minLength(1, 'must not be empty'))),
        }),
      ),
    }),
  ),
  alerts: v.optional(alertsSchema),
});

export type KeepdConfigInput = v.InferOutput<typeof keepdConfigSchema>;
export type SourcePolicyInput = v.InferOutput<typeof sourcePolicySchema>;
export type ScheduleInput = v.InferOutput<typeof schedule>;
export type ReceiverInput = v.InferOutput<typeof receiverSchema>;
export type AlertsInput = v.InferOutput<typeof alertsSchema>;
