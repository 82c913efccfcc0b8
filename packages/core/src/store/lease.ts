import type { Clock } from '../clock.js';
import { KeepError, corrupt } from '../errors.js';
import { STORE_OBJECTS } from '../formats.js';
import { STORE_LEASE_MS } from '../margins.js';
import { type ObjectStore, isStoreError } from './object-store.js';

/** The writer.lease object (formats.ts STORE_OBJECTS). Times are the writer's clock, in ms. */
export interface LeaseRecord {
  v: typeof STORE_OBJECTS.leaseVersion;
  /** who holds it: an id the writer makes at start plus its host, for messages */
  holder: string;
  takenAt: number;
  renewedAt: number;
  expiresAt: number;
}

export interface LeaseOptions {
  /**
   * "<who> on <site>": the site is where the holder keeps its local index
   * (host and data directory). Processes of one site share one index and
   * coordinate through the data directory's own locks (acquireOrShare).
   */
  holder: string;
  clock: Clock;
  /** default STORE_LEASE_MS (margins.ts) */
  ttlMs?: number;
}

const KEY = STORE_OBJECTS.writerLease;

/** The site a holder id names ("<who> on <site>"). */
export const leaseSite = (holder: string): string => {
  const at = holder.lastIndexOf(' on ');
  return at < 0 ? holder : holder.slice(at + 4);
};

function parseLease(bytes: Buffer, where: string): LeaseRecord {
  let r: LeaseRecord;
  try {
    r = JSON.parse(bytes.toString('utf8')) as LeaseRecord;
  } catch {
    throw corrupt(`${KEY} in ${where} is not JSON`);
  }
  if (r?.v !== STORE_OBJECTS.leaseVersion || typeof r.holder !== 'string' || typeof r.expiresAt !== 'number') throw corrupt(`${KEY} in ${where} is not a lease record of version ${STORE_OBJECTS.leaseVersion}`);
  return r;
}

const encode = (r: LeaseRecord) => Buffer.from(JSON.stringify(r) + '\n');

const held = (store: ObjectStore, r: LeaseRecord) =>
  new KeepError('LOCKED', `${store.description} is written by another keepd (${r.holder}) until ${new Date(r.expiresAt).toISOString()} unless it renews; stop that one, or wait for its lease to expire`);

/**
 * One writer per store prefix. Every step is a conditional write, so two
 * keepds racing for the object cannot both win: the first take is
 * create-only (If-None-Match: *), a renewal or a takeover of an expired
 * lease replaces exactly the version read (If-Match on its ETag). A fresh
 * lease of another holder is refused. The holder renews every third of the
 * TTL (margins.ts STORE_LEASE_MS) and stops writing when a renewal fails.
 */
export class WriterLease {
  private constructor(
    private readonly store: ObjectStore,
    private readonly opts: Required<LeaseOptions>,
    private etag: string,
    private current: LeaseRecord,
  ) {}

  get record(): LeaseRecord {
    return this.current;
  }

  /** Take the lease, or throw KeepError LOCKED naming the holder. */
  static acquire(store: ObjectStore, options: LeaseOptions): Promise<WriterLease> {
    return WriterLease.take(store, options, false) as Promise<WriterLease>;
  }

  /**
   * Take the lease, or answer 'shared' when another process of the same
   * site (leaseSite of the holder ids) holds it fresh; throws KeepError
   * LOCKED when a holder of another site does.
   */
  static acquireOrShare(store: ObjectStore, options: LeaseOptions): Promise<WriterLease | 'shared'> {
    return WriterLease.take(store, options, true);
  }

  private static async take(store: ObjectStore, options: LeaseOptions, share: boolean): Promise<WriterLease | 'shared'> {
    if (!store.capabilities.conditionalCreate || !store.capabilities.conditionalReplace) throw new KeepError('INVALID_ARGUMENT', `${store.description} has no conditional writes: a writer lease cannot be held there`);
    const opts = { ttlMs: STORE_LEASE_MS, ...options };
    const now = opts.clock.now();
    const fresh: LeaseRecord = { v: STORE_OBJECTS.leaseVersion, holder: opts.holder, takenAt: now, renewedAt: now, expiresAt: now + opts.ttlMs };
    const there = await store.get(KEY).catch((e) => {
      if (isStoreError(e, 'not-found')) return undefined;
      throw e;
    });
    try {
      if (!there) {
        const { etag } = await store.put(KEY, encode(fresh), { ifNoneMatch: '*' });
        return new WriterLease(store, opts, etag, fresh);
      }
      const theirs = parseLease(there.bytes, store.description);
      if (theirs.holder !== opts.holder && theirs.expiresAt > now) {
        if (share && leaseSite(theirs.holder) === leaseSite(opts.holder)) return 'shared';
        throw held(store, theirs);
      }
      const { etag } = await store.put(KEY, encode(fresh), { ifMatch: there.etag });
      return new WriterLease(store, opts, etag, fresh);
    } catch (e) {
      if (!isStoreError(e, 'precondition-failed')) throw e;
      // another writer wrote the lease between our read and our write: it won
      const winner = await store.get(KEY).then((r) => parseLease(r.bytes, store.description)).catch(() => undefined);
      throw winner ? held(store, winner) : new KeepError('LOCKED', `${store.description}: another keepd is taking the writer lease at the same time`);
    }
  }

  /** Extend the lease; throws KeepError LOCKED when it was lost (the writer must stop). */
  async renew(): Promise<void> {
    const now = this.opts.clock.now();
    const next: LeaseRecord = { ...this.current, renewedAt: now, expiresAt: now + this.opts.ttlMs };
    try {
      const { etag } = await this.store.put(KEY, encode(next), { ifMatch: this.etag });
      this.etag = etag;
      this.current = next;
    } catch (e) {
      if (isStoreError(e, 'precondition-failed')) throw new KeepError('LOCKED', `${this.store.description}: the writer lease was taken over by another keepd; this one must stop writing`);
      throw e;
    }
  }

  /** Give the lease up (it is written expired, If-Match: a lease already lost is left alone). */
  async release(): Promise<void> {
    const now = this.opts.clock.now();
    try {
      await this.store.put(KEY, encode({ ...this.current, renewedAt: now, expiresAt: now }), { ifMatch: this.etag });
    } catch (e) {
      if (!isStoreError(e, 'precondition-failed')) throw e;
    }
  }
}
