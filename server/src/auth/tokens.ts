import crypto from 'node:crypto';
import { Clock, Database, KeepError, Repository, STATE_TABLES } from '@keep/core';
import { audit, AuditActor, LOCAL } from '../audit/log.js';

/** 'viewer': signs in to the dashboard (server/src/web/) and nothing else; every RPC refuses it (rpc/call.ts). */
export type Role = 'agent' | 'admin' | 'replica' | 'viewer';

export const ROLES: Role[] = ['agent', 'admin', 'replica', 'viewer'];

/**
 * Dedup scope of an agent token. 'source': "have it" only for chunks its own
 * sources stored or were answered about (no existence oracle across tenants).
 * 'repository': any stored chunk (for agents that trust each other).
 */
export type DedupScope = 'source' | 'repository';

/** What the server stores of a token: never the token itself, only its SHA-256. */
export interface TokenRecord {
  id: string;
  role: Role;
  /** sources an agent token may back up and read; empty = any source */
  sources: string[];
  dedup: DedupScope;
  created: number;
  hash: string;
  revoked?: boolean;
}

/** The authenticated caller of one request. `tokenId` is safe to log; the secret never is. */
export interface Principal {
  tokenId: string;
  role: Role;
  sources: string[];
  dedup: DedupScope;
  /** the caller's address without its port (rpc/call.ts sets it; the audit log records it) */
  peer?: string;
}

const PREFIX = 'keep';

/** Tokens look like keep_<16 hex id>_<43 chars secret>; the id finds the record, the hash proves the secret. */
export class TokenStore {
  private readonly db: Database<TokenRecord, string>;

  constructor(
    private readonly repo: Repository,
    private readonly clock: Clock = repo.clock,
  ) {
    this.db = repo.database<TokenRecord>(STATE_TABLES.tokens);
  }

  async create(role: Role, opts: { sources?: string[]; dedup?: DedupScope } = {}, by: AuditActor = LOCAL): Promise<{ token: string; record: TokenRecord }> {
    if (!ROLES.includes(role)) throw new KeepError('INVALID_ARGUMENT', `--role must be agent, admin, replica or viewer, not ${role}`);
    const id = crypto.randomBytes(8).toString('hex');
    const token = `${PREFIX}_${id}_${crypto.randomBytes(32).toString('base64url')}`;
    const record: TokenRecord = {
      id,
      role,
      sources: opts.sources ?? [],
      dedup: opts.dedup ?? 'source',
      created: this.clock.now(),
      hash: crypto.createHash('sha256').update(token).digest('hex'),
    };
    await this.db.put(id, record);
    await audit(this.repo).record('token.create', by, { id, role, sources: record.sources, dedup: record.dedup });
    return { token, record };
  }

  list(): TokenRecord[] {
    return [...this.db.getRange()].map(({ value }) => value);
  }

  async revoke(id: string, by: AuditActor = LOCAL): Promise<void> {
    const r = this.db.get(id);
    if (!r) throw new KeepError('NOT_FOUND', `no token ${id}`);
    await this.db.put(id, { ...r, revoked: true });
    await audit(this.repo).record('token.revoke', by, { id, role: r.role });
  }

  /**
   * Token records from this replica's upstream (ListTokens), so an agent's
   * token works here after a failover. Upserted by id; a revocation on either
   * side sticks; a record whose id holds another token here is left alone.
   * Returns how many records changed.
   */
  async importRecords(records: TokenRecord[]): Promise<number> {
    let changed = 0;
    for (const r of records) {
      if (!isTokenRecord(r)) continue;
      const mine = this.db.get(r.id);
      if (mine && mine.hash !== r.hash) continue;
      const merged: TokenRecord = { id: r.id, role: r.role, sources: [...r.sources], dedup: r.dedup, created: r.created, hash: r.hash, ...(r.revoked || mine?.revoked ? { revoked: true } : {}) };
      if (mine && JSON.stringify(mine) === JSON.stringify(merged)) continue;
      await this.db.put(r.id, merged);
      changed++;
    }
    return changed;
  }

  /** Has this token been revoked (or removed) since? One LMDB read: `keepd token revoke` is another process. */
  isRevoked(id: string): boolean {
    const r = this.db.get(id);
    return !r || Boolean(r.revoked);
  }

  /**
   * UNAUTHENTICATED once the principal's token is revoked. Streams call it as
   * they take or send messages (upload streams through auth/revocation.ts), so
   * a revoke ends calls already open.
   */
  assertActive(p: Principal): void {
    if (this.isRevoked(p.tokenId)) throw new KeepError('UNAUTHENTICATED', `token ${p.tokenId} was revoked`);
  }

  /** The principal for a presented token, or UNAUTHENTICATED. */
  authenticate(token: string | undefined): Principal {
    if (!token) throw new KeepError('UNAUTHENTICATED', 'no token: send "authorization: Bearer <token>" (KEEP_TOKEN)');
    const m = /^keep_([0-9a-f]{16})_[A-Za-z0-9_-]{43}$/.exec(token);
    const r = m ? this.db.get(m[1]) : undefined;
    const presented = crypto.createHash('sha256').update(token).digest();
    if (!r || r.revoked || !crypto.timingSafeEqual(presented, Buffer.from(r.hash, 'hex'))) {
      throw new KeepError('UNAUTHENTICATED', 'unknown or revoked token');
    }
    return { tokenId: r.id, role: r.role, sources: r.sources, dedup: r.dedup };
  }
}

function isTokenRecord(r: TokenRecord): boolean {
  return (
    /^[0-9a-f]{16}$/.test(r.id) &&
    /^[0-9a-f]{64}$/.test(r.hash) &&
    ROLES.includes(r.role) &&
    ['source', 'repository'].includes(r.dedup) &&
    Array.isArray(r.sources) &&
    r.sources.every((s) => typeof s === 'string') &&
    Number.isFinite(r.created)
  );
}

/** PERMISSION_DENIED unless the principal has one of `roles`. */
export function requireRole(p: Principal, ...roles: Role[]): void {
  if (!roles.includes(p.role)) throw new KeepError('PERMISSION_DENIED', `a ${p.role} token may not do this`);
}

/** May this principal back up or read `source`? Admins and replicas read every source; agents only theirs. */
export function canUseSource(p: Principal, source: string): boolean {
  if (p.role !== 'agent') return true;
  return p.sources.length === 0 || p.sources.includes(source);
}
