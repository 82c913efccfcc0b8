import { Metadata } from '@grpc/grpc-js';

/*
 * How a token travels: the call's metadata "authorization: Bearer <token>",
 * never a message field (proto/keep/v1/repository.proto).
 */

/** The metadata key (an HTTP/2 header) that carries the token. */
export const AUTHORIZATION = 'authorization';

/** The header's value for `token`. */
export const bearerValue = (token: string): string => `Bearer ${token}`;

/** grpc-js metadata carrying `token` (empty without one). */
export function bearerMetadata(token: string | undefined): Metadata {
  const md = new Metadata();
  if (token) md.set(AUTHORIZATION, bearerValue(token));
  return md;
}

/** The token a call's metadata carries, if any. */
export function bearerToken(md: Metadata): string | undefined {
  const v = md.get(AUTHORIZATION)[0];
  return typeof v === 'string' && v.startsWith('Bearer ') ? v.slice(7).trim() : undefined;
}
