/*
 * HTTP/2 keepalive pings of keep.v1 connections. The agent pings only while
 * calls are open (grpc-js's channel and its own bulk-stream session alike):
 * it notices a vanished keepd during a long upload or restore stream without
 * hammering an idle connection. keepd accepts pings at any time.
 */

/** How often a client with calls open pings keepd. */
export const KEEPALIVE_TIME_MS = 60_000;
/** How long it waits for the answer before it drops the connection. */
export const KEEPALIVE_TIMEOUT_MS = 20_000;

/** grpc-js channel options of the agent's keepalive. */
export const CLIENT_KEEPALIVE_OPTIONS = {
  'grpc.keepalive_time_ms': KEEPALIVE_TIME_MS,
  'grpc.keepalive_timeout_ms': KEEPALIVE_TIMEOUT_MS,
  'grpc.keepalive_permit_without_calls': 0,
} as const;

/** grpc-js server options of keepd's keepalive: clients' pings are welcome with or without calls. */
export const SERVER_KEEPALIVE_OPTIONS = {
  'grpc.keepalive_permit_without_calls': 1,
} as const;
