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
  /** another process holds the lock the command needs */
  | 'LOCKED'
  /** the repository's disk is full (or below keepd's free-space reserve) */
  | 'RESOURCE_EXHAUSTED'
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

/**
 * Process exit codes shared by keep and keepd (restic's): scripts branch on
 * them, so they are a contract. PostgreSQL's wal-fetch keeps PostgreSQL's own.
 */
export const EXIT = {
  OK: 0,
  FATAL: 1,
  USAGE: 2,
  /** a backup finished and wrote its snapshot, but some entries could not be read (warnings list them) */
  PARTIAL: 3,
  /** check or restore found damage */
  DAMAGE: 4,
  NO_REPOSITORY: 10,
  LOCKED: 11,
  WRONG_PASSWORD: 12,
  /** SIGINT (128 + 2, what a shell reports) */
  INTERRUPTED: 130,
} as const;

/** The exit code for an error that ended a command. */
export function exitCodeFor(e: unknown): number {
  if (!(e instanceof KeepError)) return EXIT.FATAL;
  switch (e.code) {
    case 'INVALID_ARGUMENT':
      return EXIT.USAGE;
    case 'WRONG_PASSWORD':
      return EXIT.WRONG_PASSWORD;
    case 'NOT_A_REPOSITORY':
      return EXIT.NO_REPOSITORY;
    case 'LOCKED':
      return EXIT.LOCKED;
    case 'CORRUPT':
    case 'INCOMPLETE':
      return EXIT.DAMAGE;
    default:
      return EXIT.FATAL;
  }
}

/** Ctrl-C ends the command with exit code 130 and one line (what was stored stays; a rerun sends what is missing). */
export function exitOnInterrupt(program: string): void {
  process.once('SIGINT', () => {
    process.stderr.write(`\n${program}: interrupted\n`);
    process.exit(EXIT.INTERRUPTED);
  });
}
