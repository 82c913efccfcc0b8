import { status as Status, ServiceError, StatusObject } from '@grpc/grpc-js';
import { KeepError, KeepErrorCode } from '@keep/core';

/*
 * KeepError codes and gRPC statuses, both ways: keepd answers a KeepError
 * with its status (toStatus); the agent and keepd's own client (sync) read a
 * status back as the KeepError users and scripts see (fromStatus, fromGrpcError).
 */

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
  RESOURCE_EXHAUSTED: Status.RESOURCE_EXHAUSTED,
  INTERNAL: Status.INTERNAL,
};

/** A KeepError becomes its gRPC status with the same one-line message; anything else is INTERNAL. */
export function toStatus(e: unknown): Partial<StatusObject> & { code: Status; details: string } {
  if (e instanceof KeepError) return { code: CODES[e.code], details: e.message };
  return { code: Status.INTERNAL, details: `internal error: ${(e as Error)?.message ?? String(e)}` };
}

/** The KeepError code a gRPC status stands for (the inverse of CODES; a deadline is UNAVAILABLE; unknown ones INTERNAL). */
export function keepErrorCode(code: Status): KeepErrorCode {
  if (code === Status.OUT_OF_RANGE) return 'INVALID_ARGUMENT';
  if (code === Status.DEADLINE_EXCEEDED) return 'UNAVAILABLE';
  for (const [k, v] of Object.entries(CODES) as [KeepErrorCode, Status][]) if (v === code && k !== 'WRONG_PASSWORD' && k !== 'NOT_A_REPOSITORY') return k;
  return 'INTERNAL';
}

/** A status from another keepd as a KeepError (keepd's own client: sync). */
export function fromStatus(code: Status, details: string): KeepError {
  return new KeepError(keepErrorCode(code), details);
}

/**
 * Map a grpc-js error to the KeepError users and scripts see. `address`
 * (host:port) names the server in UNAVAILABLE messages. A KeepError passes
 * through unchanged.
 */
export function fromGrpcError(e: unknown, address = 'unknown address'): KeepError {
  if (e instanceof KeepError) return e;
  const err = e as Partial<ServiceError> | undefined;
  if (!err || typeof err.code !== 'number') return new KeepError('INTERNAL', (err as Error | undefined)?.message ?? String(e));
  // grpc-js appends an empty "Resolution note:" to some connection errors
  const details = (err.details || err.message || Status[err.code] || 'unknown error').replace(/\s*Resolution note:\s*$/, '');
  const code = keepErrorCode(err.code);
  return code === 'UNAVAILABLE' ? new KeepError('UNAVAILABLE', `cannot reach keepd at ${address}: ${details}`) : new KeepError(code, details);
}
