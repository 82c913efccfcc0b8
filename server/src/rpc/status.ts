import { status as Status, StatusObject } from '@grpc/grpc-js';
import { KeepError, KeepErrorCode } from '@keep/core';

const CODES: Record<KeepErrorCode, Status> = {
  WRONG_PASSWORD: Status.PERMISSION_DENIED,
  NOT_A_REPOSITORY: Status.FAILED_PRECONDITION,
  ALREADY_EXISTS: Status.ALREADY_EXISTS,
  NOT_FOUND: Status.NOT_FOUND,
  CORRUPT: Status.DATA_LOSS,
  INCOMPLETE: Status.FAILED_PRECONDITION,
  INVALID_ARGUMENT: Status.INVALID_ARGUMENT,
  PERMISSION_DENIED: Status.PERMISSION_DENIED,
  UNAUTHENTICATED: Status.UNAUTHENTICATED,
  UNAVAILABLE: Status.UNAVAILABLE,
  LOCKED: Status.ABORTED,
  INTERNAL: Status.INTERNAL,
};

/** A KeepError becomes its gRPC status with the same one-line message; anything else is INTERNAL. */
export function toStatus(e: unknown): Partial<StatusObject> & { code: Status; details: string } {
  if (e instanceof KeepError) return { code: CODES[e.code], details: e.message };
  return { code: Status.INTERNAL, details: `internal error: ${(e as Error)?.message ?? String(e)}` };
}

/** The other direction, for keepd's own client (sync): a status from another keepd as a KeepError. */
export function fromStatus(code: Status, details: string): KeepError {
  if (code === Status.RESOURCE_EXHAUSTED || code === Status.OUT_OF_RANGE) return new KeepError('INVALID_ARGUMENT', details);
  if (code === Status.DEADLINE_EXCEEDED) return new KeepError('UNAVAILABLE', details);
  for (const [k, v] of Object.entries(CODES) as [KeepErrorCode, Status][]) if (v === code && k !== 'WRONG_PASSWORD' && k !== 'NOT_A_REPOSITORY') return new KeepError(k, details);
  return new KeepError('INTERNAL', details);
}
