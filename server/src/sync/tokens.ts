import { create } from '@bufbuild/protobuf';
import { TokenRecord as WireTokenRecord, TokenRecordSchema } from '@keep/proto';
import type { DedupScope, Role, TokenRecord } from '../auth/tokens.js';

/**
 * Token records on the wire (ListTokens): what keepd stores of a token, its
 * SHA-256 and grants, never the token. A replica imports its upstream's
 * records on each pull (TokenStore.importRecords).
 */
export function tokenToWire(r: TokenRecord): WireTokenRecord {
  return create(TokenRecordSchema, { id: r.id, role: r.role, sources: r.sources, dedup: r.dedup, createdMs: BigInt(Math.round(r.created)), hash: r.hash, revoked: Boolean(r.revoked) });
}

export function tokenFromWire(w: WireTokenRecord): TokenRecord {
  return { id: w.id, role: w.role as Role, sources: [...w.sources], dedup: w.dedup as DedupScope, created: Number(w.createdMs), hash: w.hash, ...(w.revoked ? { revoked: true } : {}) };
}
