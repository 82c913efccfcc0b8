import fs from 'node:fs';
import { Server, ServerCredentials, status as Status, UntypedServiceImplementation } from '@grpc/grpc-js';
import { SHUTDOWN_DRAIN_MS } from '@keep/core';
import { bearerToken, grpcServiceDefinition, MAX_MESSAGE_BYTES, RepositoryService, SERVER_KEEPALIVE_OPTIONS } from '@keep/proto';
import type { TokenStore } from '../auth/tokens.js';
import { CONNECTION_IDLE_MS, MAX_CONCURRENT_STREAMS, PREAUTH_TIMEOUT_MS } from '../limits.js';
import type { Metrics, serverMetrics } from '../metrics.js';
import { authFirst } from './auth-first.js';
import { ConnectionGate, connectionCap } from './connection-limits.js';
import { FlowControl } from './flow-control.js';
import { listenError } from './host-port.js';

export interface ListenerOptions {
  /** HOST:PORT as given (for the error message) */
  listen: string;
  host: string;
  port: number;
  tlsCert?: string;
  tlsKey?: string;
  /** connections held at once, before the open-file limit caps it (connectionCap) */
  maxConnections: number;
  tokens: TokenStore;
  m: Metrics;
  metrics: ReturnType<typeof serverMetrics>;
  service: UntypedServiceImplementation;
}

export interface Listener {
  port: number;
  /** the connection cap in force */
  maxConnections: number;
  /** stop accepting connections, let in-flight calls finish (at most SHUTDOWN_DRAIN_MS) */
  drain(): Promise<void>;
}

/**
 * keepd's gRPC listener: its own TCP listener in front of grpc-js counts and
 * limits connections (net/connection-limits.ts), every call is authenticated
 * before a message is read (net/auth-first.ts), and the RepositoryService
 * answers.
 */
export async function listenGrpc(o: ListenerOptions): Promise<Listener> {
  const { m, metrics, tokens } = o;
  const maxConnections = connectionCap(o.maxConnections);
  const dropped = m.counter('keep_connections_dropped_total', 'Connections closed by a limit: cap (too many open) or preauth (no authenticated call in time)');
  const windows = new FlowControl();
  const gate = new ConnectionGate({ maxConnections, preauthTimeoutMs: PREAUTH_TIMEOUT_MS, onDrop: (reason) => dropped({ reason }) }, (socket) => injector.injectConnection(socket));
  m.gauge('keep_connections_open', 'TCP connections open to keepd', () => gate.count);
  const server = new Server({
    'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
    'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
    ...SERVER_KEEPALIVE_OPTIONS,
    'grpc.max_concurrent_streams': MAX_CONCURRENT_STREAMS,
    'grpc.max_connection_idle_ms': CONNECTION_IDLE_MS,
    interceptors: [
      authFirst(
        (md) => tokens.authenticate(bearerToken(md)),
        (peer) => {
          gate.authenticated(peer);
          windows.authenticated(peer);
        },
        (method, code) => metrics.rpc({ method, code: Status[code] }),
      ),
    ],
  });
  server.addService(grpcServiceDefinition(RepositoryService), o.service);
  windows.beforeListen(server);
  const creds = o.tlsCert ? ServerCredentials.createSsl(null, [{ cert_chain: fs.readFileSync(o.tlsCert), private_key: fs.readFileSync(o.tlsKey!) }], false) : ServerCredentials.createInsecure();
  const injector = server.createConnectionInjector(creds);
  windows.afterListen(server);
  const port = await gate.listen(o.host, o.port).catch((err: NodeJS.ErrnoException) => {
    throw listenError('--listen', o.listen, err);
  });
  return {
    port,
    maxConnections,
    async drain() {
      gate.close();
      await new Promise<void>((resolve) => {
        const force = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, SHUTDOWN_DRAIN_MS);
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      });
    },
  };
}
