/**
 * Errors users see. `code` is stable (scripts and the gRPC layer map on it);
 * `message` is one line that says what went wrong and, where it can, what to do.
 */
export type KeepErrorCode =
  | 'WRONG_PASSWORD'
  | 'NOT_A_REPOSITORY'
  | 'ALREADY_EXISTS'
  | 'NOT_FOUND'
  | 'CORRUPT'
  | 'INCOMPLETE'
  | 'INVALID_ARGUMENT'
  | 'PERMISSION_DENIED'
  | 'UNAUTHENTICATED'
  | 'UNAVAILABLE'
  /** a lock another live process holds (maintenance, a served data directory) */
  | 'LOCKED'
  | 'INTERNAL';

export class KeepError extends Error {
  constructor(
    readonly code: KeepErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'KeepError';
  }
}

export function corrupt(message: string): KeepError {
  return new KeepError('CORRUPT', message);
}

/** Process exit codes shared by keep and keepd: 1 failure, 2 bad usage, 3 wrong passphrase, 4 damage found. */
export function exitCodeFor(e: unknown): number {
  if (!(e instanceof KeepError)) return 1;
  switch (e.code) {
    case 'INVALID_ARGUMENT':
      return 2;
    case 'WRONG_PASSWORD':
      return 3;
    case 'CORRUPT':
    case 'INCOMPLETE':
      return 4;
    case 'LOCKED':
      return 11;
    default:
      return 1;
  }
}
