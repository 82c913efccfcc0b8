import type { Database, RootDatabase } from 'lmdb';
import type { Clock } from '../clock.js';
import type { SessionRecord } from '../index/tables.js';
import { STALE_SESSION_RECORD_MS } from '../margins.js';

export type { SessionRecord } from '../index/tables.js';

/**
 * Open writer sessions (the index's `sessions` table), of any process: GC
 * keeps what a session was told it need not upload, forget keeps its parent.
 */
export class SessionRegistry {
  constructor(
    private readonly env: RootDatabase,
    private readonly db: Database<SessionRecord, string>,
    private readonly clock: Clock,
  ) {}

  /** Record an open writer session: GC keeps what it was told it need not upload, forget keeps its parent. */
  async register(id: string, rec: SessionRecord): Promise<void> {
    await this.db.put(id, rec);
  }

  async renew(id: string, leaseUntil: number): Promise<void> {
    const r = this.db.get(id);
    if (r) await this.db.put(id, { ...r, leaseUntil });
  }

  async end(id: string): Promise<void> {
    await this.db.remove(id);
  }

  /** end, inside the caller's write transaction. */
  endNow(id: string): void {
    void this.db.remove(id);
  }

  /**
   * Sessions whose lease has not ended (any process), oldest first. Records of
   * sessions that ended a day ago (their process died) are dropped; not
   * sooner, so one process with a skewed clock cannot erase live leases.
   */
  live(now = this.clock.now()): (SessionRecord & { id: string })[] {
    const live: (SessionRecord & { id: string })[] = [];
    const expired: string[] = [];
    for (const { key, value } of this.db.getRange()) {
      if (value.leaseUntil >= now) live.push({ id: key, ...value });
      else if (value.leaseUntil < now - STALE_SESSION_RECORD_MS) expired.push(key);
    }
    if (expired.length) void this.env.transaction(() => expired.forEach((k) => this.db.remove(k)));
    return live.sort((a, b) => a.started - b.started);
  }
}
