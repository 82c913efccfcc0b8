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
