/** Largest gRPC message either way: a max-size blob plus framing, with room for big tree nodes. */
export const MAX_MESSAGE_BYTES = 160 * 1024 * 1024;

/**
 * Free space keepd keeps on its data directory's file system by default
 * (`keepd serve --min-free SIZE|PERCENT`): below it, OpenSession is refused
 * with RESOURCE_EXHAUSTED. Failure bounded: backups started on a disk that is
 * all but full, each failing part-way and leaving more partial packs; the
 * reserve is what sessions already running, prune and the index still need.
 */
export const DEFAULT_MIN_FREE = '2%';
