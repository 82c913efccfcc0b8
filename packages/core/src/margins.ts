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

/**
 * The longest a writer session lives, renewed or not. Race prevented: a
 * session renewed forever (an empty Offer every few minutes) would hold the
 * GC cutoff back forever, and its token's sources' garbage with it. keepd's
 * sweep closes an older session (what it stored is kept, durable, for a
 * rerun) and its next call is told why. A day is far beyond any backup.
 */
export const MAX_SESSION_AGE_MS = 24 * 60 * 60 * 1000;

/** How often keepd looks for sessions whose lease ended (flushing what they stored). */
export const SESSION_SWEEP_INTERVAL_MS = 30 * 1000;

/**
 * How long SIGTERM waits for in-flight calls before cutting them. Race
 * prevented: a commit half-way through its closure check is allowed to
 * finish rather than being reported failed after it succeeded.
 */
export const SHUTDOWN_DRAIN_MS = 30 * 1000;

/**
 * A blob stored or answered "have it" this recently is never collected, even
 * when nothing references it. Race prevented: a session that finished its
 * uploads but whose lease record a crash or a restart lost, and an agent
 * rerunning an interrupted backup, still find the blobs they expect.
 */
export const GC_GRACE_MS = 60 * 60 * 1000;

/**
 * Subtracted once more from the sweep cutoff. Race prevented: clock steps
 * between the processes that touch blobs (keepd, embedded backups) and the
 * one that collects (Proxmox uses the same 5 minutes).
 */
export const GC_CLOCK_SLACK_MS = 5 * 60 * 1000;

/**
 * Packs renamed into packs/ but not (yet) in the index, and unfinished packs
 * in tmp/, are deleted only when older than the sweep cutoff. Race
 * prevented: a writer between "pack renamed" and "pack indexed" (or still
 * appending to its tmp pack) must not lose its pack to a concurrent prune.
 */
export const ORPHAN_PACK_MIN_AGE_MS = GC_GRACE_MS;

/**
 * A session record whose lease ended this long ago is deleted (its process
 * died without ending it). Race prevented: a process whose clock runs ahead
 * must not erase the records of sessions that are still alive.
 */
export const STALE_SESSION_RECORD_MS = 24 * 60 * 60 * 1000;

/**
 * Free bytes a pack writer leaves on the repository's file system: a blob
 * that would go below this is refused (RESOURCE_EXHAUSTED) before a byte is
 * written. Failure prevented: packs filling the disk to the last byte, so the
 * index commits that follow (LMDB pages, the snapshot file, session records)
 * fail with ENOSPC half-way instead of the upload failing cleanly.
 */
export const PACK_SPACE_FLOOR_BYTES = 2 * 1024 * 1024;

/** A pack writer asks the file system for its free space again after writing this much (other writers share the disk). */
export const SPACE_RECHECK_BYTES = 8 * 1024 * 1024;

/**
 * How far a writer's clock may be from the repository's when it commits a
 * snapshot: keepd refuses a commit whose snapshot time lies more than this
 * after its own clock (the writer's clock runs ahead) or before the session
 * began (it runs behind). Race prevented: a skewed agent's snapshot taking
 * "latest", dodging or falling to retention, or hiding a missed RPO. It also
 * bounds what an agent checking a record accepts: keepd's recorded commit
 * time can never honestly lie more than this before the snapshot's own time.
 */
export const MAX_CLOCK_SKEW_MS = 5 * 60 * 1000;

/**
 * How long a writer lease on an object-store prefix (store/lease.ts) lasts
 * without renewal. A keepd that stops renewing (killed, partitioned) blocks
 * a second keepd on the same prefix for at most this long; the holder renews
 * every third of it, so two missed renewals still leave it the lease.
 */
export const STORE_LEASE_MS = 2 * 60 * 1000;

/**
 * On object storage a pack prune dropped from the index (emptied, repacked,
 * an orphan) is deleted from the bucket only this long after (the
 * `pack-deletions` table in state.mdb, gc/delayed-deletions.ts). Race
 * prevented: a reader (a restore, a replica's pull, check) that looked a
 * blob up before a repack moved it sends its ranged GET to the old pack,
 * perhaps in another process or after retries with back-off; the old pack
 * must still be there. Far longer than the longest read; `keepd prune
 * --delete-delay` changes it. A local directory deletes at once: a reader
 * that misses the file looks the blob up again (index/blob-reader.ts).
 */
export const PACK_DELETE_DELAY_MS = 60 * 60 * 1000;
