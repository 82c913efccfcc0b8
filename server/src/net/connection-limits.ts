import fs from 'node:fs';
import net from 'node:net';
import { LISTEN_BACKLOG, OPEN_FILES_RESERVE } from '../limits.js';

/** The soft open-file limit of this process (Linux /proc), or undefined where it cannot be read. */
export function openFileLimit(): number | undefined {
  try {
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(fs.readFileSync('/proc/self/limits', 'utf8'));
    return m && m[1] !== 'unlimited' ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** The connection cap: the configured one, and never more than the open-file limit leaves room for. */
export function connectionCap(configured: number, files = openFileLimit()): number {
  return files === undefined ? configured : Math.max(1, Math.min(configured, files - OPEN_FILES_RESERVE));
}

/** A connection's peer as grpc-js's getPeer() names it (host:port): how the gate and the HTTP/2 windows (flow-control.ts) know a call's connection. */
export function peerOf(socket: { remoteAddress?: string; remotePort?: number }): string {
  return `${socket.remoteAddress}:${socket.remotePort}`;
}

/**
 * Close a connection now. Once grpc-js's HTTP/2 session has taken the socket
 * over, destroy() leaves the connection open (Node 20); a reset closes it.
 */
function drop(socket: net.Socket): void {
  socket.resetAndDestroy();
}

interface Conn {
  socket: net.Socket;
  authenticated: boolean;
  timer?: NodeJS.Timeout;
}

export interface GateOptions {
  maxConnections: number;
  /** close a connection that made no authenticated call within this time */
  preauthTimeoutMs: number;
  /** a connection was closed by a limit (metrics) */
  onDrop?: (reason: 'cap' | 'preauth') => void;
}

/**
 * keepd's listening socket, in front of grpc-js: every TCP connection is
 * counted; at the cap the oldest connection without an authenticated call
 * makes room (or, when all are authenticated, the new one is refused); one
 * that makes no authenticated call within the pre-auth timeout is closed.
 * Accepted sockets go to grpc-js (its connection injector: TLS and HTTP/2
 * as with its own listener).
 */
export class ConnectionGate {
  /** by peer address as grpc-js reports it (host:port), oldest first */
  private readonly conns = new Map<string, Conn>();
  private readonly server: net.Server;

  constructor(
    private readonly o: GateOptions,
    inject: (socket: net.Socket) => void,
  ) {
    this.server = net.createServer({ noDelay: true }, (socket) => {
      // Errors (resets) end the connection; grpc-js sees its close.
      socket.on('error', () => undefined);
      const peer = peerOf(socket);
      if (this.conns.size >= this.o.maxConnections && !this.evictOne()) {
        this.o.onDrop?.('cap');
        drop(socket);
        return;
      }
      const c: Conn = { socket, authenticated: false };
      c.timer = setTimeout(() => {
        this.o.onDrop?.('preauth');
        drop(socket);
      }, this.o.preauthTimeoutMs);
      c.timer.unref();
      this.conns.set(peer, c);
      socket.once('close', () => {
        clearTimeout(c.timer);
        if (this.conns.get(peer) === c) this.conns.delete(peer);
      });
      inject(socket);
    });
  }

  get count(): number {
    return this.conns.size;
  }

  /** Close the oldest connection that has not authenticated; false if every one has. */
  private evictOne(): boolean {
    for (const [peer, c] of this.conns) {
      if (c.authenticated) continue;
      this.conns.delete(peer);
      clearTimeout(c.timer);
      this.o.onDrop?.('cap');
      drop(c.socket);
      return true;
    }
    return false;
  }

  /** A call with a valid token arrived from `peer` (grpc-js's getPeer()): its connection stays. */
  authenticated(peer: string): void {
    const c = this.conns.get(peer);
    if (!c || c.authenticated) return;
    c.authenticated = true;
    clearTimeout(c.timer);
  }

  listen(host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen({ port, host, backlog: LISTEN_BACKLOG }, () => {
        this.server.off('error', reject);
        resolve((this.server.address() as net.AddressInfo).port);
      });
    });
  }

  /** Stop accepting; connections that never authenticated go now (grpc-js drains the others). */
  close(): void {
    this.server.close();
    for (const c of this.conns.values()) if (!c.authenticated) drop(c.socket);
  }
}
