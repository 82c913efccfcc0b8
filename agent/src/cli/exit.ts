import { KeepError } from '@keep/core';

/** Exit codes: 1 failure, 2 bad usage, 3 wrong passphrase, 4 damage found (scripts can tell them apart). */
export function exitCode(e: unknown): number {
  if (!(e instanceof KeepError)) return 1;
  switch (e.code) {
    case 'INVALID_ARGUMENT':
      return 2;
    case 'WRONG_PASSWORD':
      return 3;
    case 'CORRUPT':
    case 'INCOMPLETE':
      return 4;
    default:
      return 1;
  }
}
