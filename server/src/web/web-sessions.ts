import crypto from 'node:crypto';
import type { Clock } from '@keep/core';
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
 * keepd's dashboard sessions, in memory: a restart signs everyone out. The
 * cookie holds a random id; the map is keyed by its SHA-256, so even a dump
 * of keepd's memory holds no usable cookie.
 */
export class WebSessions {
  private readonly byHash = new Map<string, WebSession>();

  constructor(
    private readonly clock: Clock,
    private readonly lifetimeMs = WEB_SESSION_MS,
  ) {}

  open(tokenId: string, role: Role): { id: string; session: WebSession } {
    this.sweep();
    const id = crypto.randomBytes(32).toString('base64url');
    const session: WebSession = { tokenId, role, csrf: crypto.randomBytes(32).toString('base64url'), expires_ms: this.clock.now() + this.lifetimeMs };
    this.byHash.set(hash(id), session);
    return { id, session };
  }

  /** The live session for a cookie value, or undefined (unknown, expired). */
  get(id: string | undefined): WebSession | undefined {
    if (!id) return undefined;
    const s = this.byHash.get(hash(id));
    if (!s) return undefined;
    if (s.expires_ms <= this.clock.now()) {
      this.byHash.delete(hash(id));
      return undefined;
    }
    return s;
  }

  close(id: string): void {
    this.byHash.delete(hash(id));
  }

  private sweep(): void {
    const now = this.clock.now();
    for (const [k, s] of this.byHash) if (s.expires_ms <= now) this.byHash.delete(k);
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
