import { Repository } from '@keep/core';
import { KeepError } from '@keep/core';

export interface CheckArgs {
  data: string;
  readData?: boolean;
  readDataSubset?: number;
}

/** Keyless repository check: structure, index against packs, storage hashes, closure. */
export async function runCheck(args: CheckArgs) {
  const repo = await Repository.open(args.data);
  try {
    const report = await repo.check({ readData: args.readData, readDataSubset: args.readDataSubset });
    return report;
  } finally {
    await repo.close();
  }
}

export function checkFailure(errors: string[]): KeepError {
  return new KeepError('CORRUPT', `check found ${errors.length} problem(s): ${errors[0]}`);
}
