/** Largest gRPC message either way: a max-size blob plus framing, with room for big tree nodes. */
export const MAX_MESSAGE_BYTES = 160 * 1024 * 1024;

/** How often a serving replica looks for `keepd promote` (another process) to stop following its upstream. */
export const ROLE_CHECK_INTERVAL_MS = 1000;
