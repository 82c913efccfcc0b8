import { KeepError, requireSafeTransport } from '@keep/core';

/*
 * Where a keepd lives: `grpc://host:port` (plaintext h2) or
 * `grpcs://host:port` (TLS), for the agent (KEEP_REPOSITORY) and a replica's
 * upstream (keepd sync --from, serve --upstream).
 */

export interface GrpcAddress {
  /** TLS (grpcs) or plaintext h2 (grpc) */
  secure: boolean;
  /** host:port as grpc-js wants it (IPv6 literals bracketed) */
  address: string;
}

/**
 * Parse a keepd address; plaintext is refused to a host that is not loopback
 * unless `insecure` (before any connection). `notAddress` words the error for
 * a string that is not one.
 */
export function parseGrpcAddress(
  location: string,
  insecure = false,
  notAddress = (l: string) => `not a keepd address: ${l} (use grpc://host:port or grpcs://host:port)`,
): GrpcAddress {
  const m = /^(grpcs?):\/\/(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):(\d{1,5})\/?$/.exec(location);
  if (!m || Number(m[3]) < 1 || Number(m[3]) > 65535) throw new KeepError('INVALID_ARGUMENT', notAddress(location));
  requireSafeTransport(m[1], m[2], insecure);
  return { secure: m[1] === 'grpcs', address: `${m[2]}:${m[3]}` };
}
