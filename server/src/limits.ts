/*
 * keepd's own limits. Those of the wire contract (ids per request, message
 * sizes) are in packages/proto/src/limits.ts.
 */

/**
 * Free space keepd keeps on its data directory's file system by default
 * (`keepd serve --min-free SIZE|PERCENT`): below it, OpenSession is refused
 * with RESOURCE_EXHAUSTED. Failure bounded: backups started on a disk that is
 * all but full, each failing part-way and leaving more partial packs; the
 * reserve is what sessions already running, prune and the index still need.
 */
export const DEFAULT_MIN_FREE = '2%';

/**
 * Connections keepd holds at once (`keepd serve --max-connections N`), and at
 * most its open-file limit less OPEN_FILES_RESERVE. Attack bounded: a flood
 * of idle TCP connections using up keepd's descriptors, so that accept()
 * fails for a real agent ("cannot reach keepd"). At the cap, the oldest
 * connection that has not yet made an authenticated call is closed for the
 * new one: a flood cannot keep an agent out, only make it race.
 */
export const DEFAULT_MAX_CONNECTIONS = 4096;

/**
 * Connections the kernel completes for keepd before it accepts them (listen
 * backlog; Linux caps it at net.core.somaxconn). Node's default, 511, is
 * below a flood keepd must ride out: while keepd is busy, connections past the
 * backlog are refused at the SYN or forgotten after the handshake, so a real
 * agent's connect stalls for seconds. Deep enough for the connection cap.
 */
export const LISTEN_BACKLOG = DEFAULT_MAX_CONNECTIONS;

/** Descriptors kept for everything but connections: packs being read and written, LMDB, logs, the metrics socket. */
export const OPEN_FILES_RESERVE = 256;

/**
 * How long a connection may stay open without an authenticated call.
 * Attack bounded: connections (raw TCP, TLS handshakes left hanging, HTTP/2
 * sessions with no valid token) held open to use up the connection cap.
 * A real client sends its first call at once.
 */
export const PREAUTH_TIMEOUT_MS = 10_000;

/**
 * An authenticated connection with no call for this long is closed (HTTP/2
 * GOAWAY; clients reconnect when they next call). Bounds connections left
 * behind by clients that went away without closing them.
 */
export const CONNECTION_IDLE_MS = 15 * 60 * 1000;

/**
 * Concurrent calls on one connection (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS).
 * Attack bounded: one connection opening thousands of streams, each with its
 * receive window of buffered bytes. An agent uses a few.
 */
export const MAX_CONCURRENT_STREAMS = 64;

/**
 * HTTP/2 receive windows (net/flow-control.ts): what an agent may have in
 * flight on one upload stream, and on its whole connection once a call on it
 * authenticated (before that, HTTP/2's 64 KiB). Wider windows mean a
 * WINDOW_UPDATE per 512 KiB received instead of per ~32 KiB; bounded like a
 * message (MAX_MESSAGE_BYTES is larger), for MAX_CONNECTIONS agents.
 */
export const H2_STREAM_WINDOW_BYTES = 1024 * 1024;
export const H2_CONNECTION_WINDOW_BYTES = 2 * 1024 * 1024;

/** How often a serving replica looks for `keepd promote` (another process) to stop following its upstream. */
export const ROLE_CHECK_INTERVAL_MS = 1000;
