import { create } from '@bufbuild/protobuf';
import { ForgetOptions, parseGroupBy, parseTier, RetentionPolicy } from '@keep/core';
import { ForgetRequest, ForgetRequestSchema } from './gen/keep/v1/repository_pb.js';

/*
 * The Forget RPC's request both ways: `keep forget` (agent) sends core's
 * forget options, keepd runs core's engine on what arrives.
 */

/** Unset counts stay unset (no rule); absent durations travel as ''. */
export function forgetToWire(o: ForgetOptions): ForgetRequest {
  const p = o.policy;
  return create(ForgetRequestSchema, {
    keepLast: p.last,
    keepHourly: p.hourly,
    keepDaily: p.daily,
    keepWeekly: p.weekly,
    keepMonthly: p.monthly,
    keepYearly: p.yearly,
    keepWithin: p.within ?? '',
    keepWithinHourly: p.withinHourly ?? '',
    keepWithinDaily: p.withinDaily ?? '',
    keepWithinWeekly: p.withinWeekly ?? '',
    keepWithinMonthly: p.withinMonthly ?? '',
    keepWithinYearly: p.withinYearly ?? '',
    keepTags: p.tags ?? [],
    source: o.source ?? '',
    tier: o.tier ?? '',
    groupBy: [...(o.groupBy ?? [])],
    groupBySet: o.groupBy !== undefined,
    dryRun: Boolean(o.dryRun),
    prune: Boolean(o.prune),
  });
}

/** The other way, validated as the CLI validates its flags (tier and grouping names; the policy by the engine). */
export function forgetFromWire(r: ForgetRequest): ForgetOptions {
  const policy: RetentionPolicy = {
    last: r.keepLast,
    hourly: r.keepHourly,
    daily: r.keepDaily,
    weekly: r.keepWeekly,
    monthly: r.keepMonthly,
    yearly: r.keepYearly,
    within: r.keepWithin || undefined,
    withinHourly: r.keepWithinHourly || undefined,
    withinDaily: r.keepWithinDaily || undefined,
    withinWeekly: r.keepWithinWeekly || undefined,
    withinMonthly: r.keepWithinMonthly || undefined,
    withinYearly: r.keepWithinYearly || undefined,
    tags: r.keepTags.length ? [...r.keepTags] : undefined,
  };
  for (const k of Object.keys(policy) as (keyof RetentionPolicy)[]) if (policy[k] === undefined) delete policy[k];
  return {
    source: r.source || undefined,
    policy,
    tier: r.tier ? parseTier(r.tier) : undefined,
    groupBy: r.groupBySet ? parseGroupBy(r.groupBy.join(',')) : undefined,
    dryRun: r.dryRun,
    prune: r.prune,
  };
}
