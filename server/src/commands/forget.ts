import { Clock, forgetSnapshots, ForgetOptions, ForgetResult, processClock, Repository } from '@keep/core';
import { keepdRepoOptions } from '../data-lock.js';

export type { ForgetGroup, ForgetOptions } from '@keep/core';
export { FORGET_FLAGS, policyFromFlags } from '@keep/core';

/** `keepd forget`: core's forget engine (snapshot/forget.ts) on the data directory, which keepd must not be serving. */
export async function runForget(data: string, o: ForgetOptions, clock: Clock = processClock()): Promise<ForgetResult> {
  const repo = await Repository.open(data, keepdRepoOptions(data, { clock }));
  try {
    return await forgetSnapshots(repo, o, clock);
  } finally {
    await repo.close();
  }
}
