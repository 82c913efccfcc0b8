import { Clock, forgetSnapshots, ForgetOptions, ForgetResult, processClock, Repository } from '@keep/core';
import { keepdRepoOptions } from '../data-lock.js';
import { audit, LOCAL } from '../audit/log.js';
import { forgetFields } from '../audit/events.js';

export type { ForgetGroup, ForgetOptions } from '@keep/core';
export { FORGET_FLAGS, policyFromFlags } from '@keep/core';

/** `keepd forget`: core's forget engine (snapshot/forget.ts) on the data directory, which keepd must not be serving. */
export async function runForget(data: string, o: ForgetOptions, clock: Clock = processClock()): Promise<ForgetResult> {
  const repo = await Repository.open(data, keepdRepoOptions(data, { clock }));
  try {
    const r = o.dryRun ? await forgetSnapshots(repo, o, clock) : await repo.asWriter('keepd forget', () => forgetSnapshots(repo, o, clock));
    if (!o.dryRun) await audit(repo).record('forget', LOCAL, forgetFields(r));
    return r;
  } finally {
    await repo.close();
  }
}
