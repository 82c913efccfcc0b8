/** Largest gRPC message either way: a max-size blob plus framing, with room for big tree nodes. */
export const MAX_MESSAGE_BYTES = 160 * 1024 * 1024;
