import crypto from 'node:crypto';
import { Clock, Database, Repository, STATE_TABLES } from '@keep/core';
import type { Role } from '../auth/tokens.js';

/** A dashboard session lasts this long from sign-in (then the login form again). */
export const WEB_SESSION_MS = 8 * 3600_000;

export interface WebSession {
  /** the signed-in token's id (never the token) */
  tokenId: string;
  role: Role;
  /** sent back with every POST (logout): a page of another site cannot know it */
  csrf: string;
  expires_ms: number;
}

/**
 * keepd's dashboard sessions, in state.mdb (`dashboard-sessions`), so a
 * keepd restart signs nobody out. The cookie holds a random id; the table
 * is keyed by its SHA-256, so neither a copy of state.mdb nor a dump of
 * keepd's memory holds a usable cookie. Expired sessions, and those of
 * revoked tokens, are swept at each sign-in and when keepd starts.
 */
export class WebSessions {
  private readonly db: Database<WebSession, string>;

  constructor(
    repo: Repository,
    private readonly clock: Clock,
    private readonly revoked: (tokenId: string) => boolean,
    private readonly lifetimeMs = WEB_SESSION_MS,
  ) {
    this.db = repo.database<WebSession>(STATE_TABLES.dashboardSessions);
  }

  async open(tokenId: string, role: Role): Promise<{ id: string; session: WebSession }> {
    await this.sweep();
    const id = crypto.randomBytes(32).toString('base64url');
    const session: WebSession = { tokenId, role, csrf: crypto.randomBytes(32).toString('base64url'), expires_ms: this.clock.now() + this.lifetimeMs };
    await this.db.put(hash(id), session);
    return { id, session };
  }

  /** The live session for a cookie value, or undefined (unknown, expired, its token revoked: then its record goes). */
  async get(id: string | undefined): Promise<WebSession | undefined> {
    if (!id) return undefined;
    const s = this.db.get(hash(id));
    if (!s) return undefined;
    if (s.expires_ms > this.clock.now() && !this.revoked(s.tokenId)) return s;
    await this.close(id);
    return undefined;
  }

  async close(id: string): Promise<void> {
    await this.db.remove(hash(id));
  }

  /** Drop expired sessions and those of revoked tokens. */
  async sweep(): Promise<void> {
    const now = this.clock.now();
    for (const { key, value } of [...this.db.getRange()]) if (value.expires_ms <= now || this.revoked(value.tokenId)) await this.db.remove(key);
  }
}

const hash = (id: string) => crypto.createHash('sha256').update(id).digest('hex');

/** Constant-time comparison of a presented CSRF token with the session's. */
export function csrfMatches(session: WebSession, presented: string | undefined): boolean {
  if (!presented) return false;
  const a = Buffer.from(session.csrf);
  const b = Buffer.from(presented);
  return a.length === b.length && crypto.timingSafeEqual(a, b);
}
