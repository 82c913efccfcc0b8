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
  INTERNAL: Status.INTERNAL,
};

/** A KeepError becomes its gRPC status with the same one-line message; anything else is INTERNAL. */
export function toStatus(e: unknown): Partial<StatusObject> & { code: Status; details: string } {
  if (e instanceof KeepError) return { code: CODES[e.code], details: e.message };
  return { code: Status.INTERNAL, details: `internal error: ${(e as Error)?.message ?? String(e)}` };
}
