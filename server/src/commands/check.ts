import { Repository } from '@keep/core';
import { KeepError } from '@keep/core';
import { keepdRepoOptions } from '../data-lock.js';

export interface CheckArgs {
  data: string;
  readData?: boolean;
  readDataSubset?: number;
}

/** Keyless repository check: structure, index against packs, storage hashes, closure. */
export async function runCheck(args: CheckArgs) {
  return Repository.using(args.data, (repo) => repo.check({ readData: args.readData, readDataSubset: args.readDataSubset }), keepdRepoOptions(args.data));
}

export function checkFailure(errors: string[]): KeepError {
  return new KeepError('CORRUPT', `check found ${errors.length} problem(s): ${errors[0]}`);
}
