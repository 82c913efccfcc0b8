/**
 * Every time margin the repository's safety depends on, in one place, each
 * with the race it prevents. Times are in milliseconds and read from the
 * injectable Clock, so tests move time instead of sleeping.
 */

/**
 * How long a writer session stays alive without a call. Every call on the
 * session renews it. Race prevented: while a session is alive, the blobs it
 * was told it need not upload ("have it") must not be collected, and the
 * parent snapshot it builds on must not be forgotten; a crashed agent's
 * session must not pin garbage forever, so the lease ends.
 */
export const SESSION_LEASE_MS = 15 * 60 * 1000;

/** How often keepd looks for sessions whose lease ended (flushing what they stored). */
export const SESSION_SWEEP_INTERVAL_MS = 30 * 1000;

/**
 * How long SIGTERM waits for in-flight calls before cutting them. Race
 * prevented: a commit half-way through its closure check is allowed to
 * finish rather than being reported failed after it succeeded.
 */
export const SHUTDOWN_DRAIN_MS = 30 * 1000;
