import { Repository, STATE_TABLES } from '@keep/core';
import { audit, AuditActor } from './log.js';

/** "ipv4:127.0.0.1:5000", "ipv6:[::1]:5000" (grpc-js's getPeer) -> the address without its port: a new connection is no new peer. */
export function peerAddress(grpcPeer: string): string {
  const p = grpcPeer.replace(/^(ipv4|ipv6|unix):/, '');
  const v6 = /^\[([^\]]+)\](?::\d+)?$/.exec(p);
  if (v6) return v6[1];
  return p.replace(/:\d+$/, '');
}

/**
 * The first use of a token from an address is audited (token.new-peer); the
 * pairs seen are kept in state.mdb so a restart does not repeat them, and in
 * memory so a known pair costs nothing per call.
 */
export class PeerWatch {
  private readonly seen = new Set<string>();
  constructor(private readonly repo: Repository) {}

  note(who: Required<AuditActor>): void {
    const key = `${who.tokenId} ${who.peer}`;
    if (this.seen.has(key)) return;
    const db = this.repo.database<number>(STATE_TABLES.auditPeers);
    if (db.get(key) === undefined) {
      void audit(this.repo).record('token.new-peer', who); // the call goes on; keepd's shutdown flushes it
      db.putSync(key, this.repo.clock.now());
    }
    this.seen.add(key);
  }
}
