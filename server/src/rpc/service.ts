import type { UntypedServiceImplementation } from '@grpc/grpc-js';
import { rpcCalls, ServiceDeps } from './call.js';
import { adminHandlers } from './handlers/admin.js';
import { keyHandlers } from './handlers/keys.js';
import { readHandlers } from './handlers/reads.js';
import { replicationHandlers } from './handlers/replication.js';
import { retentionHandlers } from './handlers/retention.js';
import { runHandlers } from './handlers/runs.js';
import { drillHandlers } from './handlers/drills.js';
import { sessionHandlers } from './handlers/sessions.js';

export type { ServiceDeps } from './call.js';

/**
 * The RepositoryService: one handler module per RPC family (rpc/handlers/),
 * each built on rpc/call.ts, which authenticates, authorizes, checks the
 * message, maps errors to statuses and counts every call.
 */
export function repositoryService(d: ServiceDeps): UntypedServiceImplementation {
  const rpc = rpcCalls(d);
  return {
    ...keyHandlers(rpc),
    ...sessionHandlers(rpc),
    ...readHandlers(rpc),
    ...replicationHandlers(rpc),
    ...retentionHandlers(rpc),
    ...runHandlers(rpc),
    ...adminHandlers(rpc),
    ...drillHandlers(rpc),
  };
}
