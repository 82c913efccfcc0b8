import { KeepError } from '@keep/core';
import type { DedupScope, Role } from './tokens.js';

/** What `keepd token create` and CreateToken (`keep admin token create`) are asked for. */
export interface TokenRequest {
  role?: string;
  sources: string[];
  allSources: boolean;
  /** empty: source */
  dedup?: string;
}

/** The grants of a new token, checked the same way on keepd's shell and over gRPC. */
export function checkTokenRequest(r: TokenRequest): { role: Role; sources: string[]; dedup: DedupScope } {
  if (!r.role) throw new KeepError('INVALID_ARGUMENT', 'token create needs --role agent|admin|replica|viewer');
  const dedup = r.dedup || 'source';
  if (dedup !== 'source' && dedup !== 'repository') throw new KeepError('INVALID_ARGUMENT', '--dedup takes source or repository');
  // An agent token for every source must be asked for: forgetting --source must not grant them all.
  if (r.role === 'agent' && r.sources.length === 0 && !r.allSources) throw new KeepError('INVALID_ARGUMENT', 'an agent token needs --source NAME (repeatable) or --all-sources (every source, present and future)');
  if (r.sources.length > 0 && r.allSources) throw new KeepError('INVALID_ARGUMENT', '--source and --all-sources exclude each other');
  return { role: r.role as Role, sources: r.sources, dedup };
}
