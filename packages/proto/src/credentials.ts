import { ChannelCredentials, credentials, Metadata } from '@grpc/grpc-js';
import { isIP } from 'node:net';
import type { ConnectionOptions } from 'node:tls';

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

/**
 * TLS channel credentials trusting `ca` (null: the default roots). grpc-js
 * sends the target host as the TLS server name even when it is an IP address,
 * which RFC 6066 forbids and Node answers with a DEP0123 warning on every
 * command; for an IP the name is left out. The certificate is still checked
 * against the IP (tls.connect falls back to the host).
 */
export function tlsChannelCredentials(ca: Buffer | null): ChannelCredentials {
  const creds = credentials.createSsl(ca);
  const createConnector = creds._createSecureConnector.bind(creds);
  creds._createSecureConnector = (...args) => {
    const connector = createConnector(...args) as ReturnType<typeof createConnector> & { connectionOptions?: ConnectionOptions };
    const o = connector.connectionOptions;
    if (o?.servername && isIP(o.servername)) delete o.servername;
    return connector;
  };
  return creds;
}
