import type { Http2Server, ServerHttp2Session } from 'node:http2';
import type { Server } from '@grpc/grpc-js';
import { H2_CONNECTION_WINDOW_BYTES, H2_STREAM_WINDOW_BYTES } from '../limits.js';
import { peerOf } from './connection-limits.js';

/**
 * HTTP/2 receive windows wider than the protocol's 64 KiB. At 64 KiB keepd
 * sent a WINDOW_UPDATE pair (a writev) for every ~32 KiB an agent uploaded:
 * ~1,000 syscalls per 16 MiB WAL segment, and a sender held to 64 KiB in
 * flight. A stream may have H2_STREAM_WINDOW_BYTES in flight (SETTINGS, for
 * every stream), but a connection only 64 KiB in all until one of its calls
 * authenticated: a stranger's connection can make keepd buffer no more than
 * before, and an agent's gets H2_CONNECTION_WINDOW_BYTES.
 *
 * grpc-js has no option for the server's windows (only a client's
 * `grpc-node.flow_control_window`): this sets the SETTINGS in the options its
 * HTTP/2 servers are made with, and widens a session's window from its
 * `session` event. `listen` calls `beforeListen` before it makes the HTTP/2
 * server (createConnectionInjector) and `afterListen` after.
 * test/preauth-limits.test.ts checks both on a real keepd.
 */
export class FlowControl {
  /** sessions by peer address (grpc-js's getPeer(): host:port), until they close */
  private readonly sessions = new Map<string, ServerHttp2Session>();

  beforeListen(server: Server): void {
    const common = (server as unknown as { commonServerOptions?: { settings?: Record<string, number> } }).commonServerOptions;
    if (!common) throw new Error('grpc-js changed: no commonServerOptions to set the HTTP/2 stream window in (server/src/net/flow-control.ts)');
    common.settings = { ...common.settings, initialWindowSize: H2_STREAM_WINDOW_BYTES };
  }

  afterListen(server: Server): void {
    const servers = (server as unknown as { http2Servers?: Map<Http2Server, unknown> }).http2Servers;
    if (!servers?.size) throw new Error('grpc-js changed: no HTTP/2 server to widen windows on (server/src/net/flow-control.ts)');
    for (const h2 of servers.keys()) {
      h2.on('session', (session: ServerHttp2Session) => {
        const peer = peerOf(session.socket);
        this.sessions.set(peer, session);
        session.once('close', () => {
          if (this.sessions.get(peer) === session) this.sessions.delete(peer);
        });
      });
    }
  }

  /** A call with a valid token arrived from `peer`: its connection may have H2_CONNECTION_WINDOW_BYTES in flight. */
  authenticated(peer: string): void {
    const session = this.sessions.get(peer);
    if (!session) return;
    this.sessions.delete(peer); // once
    if (!session.destroyed) session.setLocalWindowSize(H2_CONNECTION_WINDOW_BYTES);
  }
}
