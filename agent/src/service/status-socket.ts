import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { KeepError } from '@keep/core';

/**
 * The agent's local status socket: a Unix socket of mode 0600 in a
 * directory only its owner reaches, so only the agent's own user (and root)
 * can ask. A client connects and reads one JSON document; nothing is read
 * from the client.
 */
export class StatusSocket {
  private constructor(
    private readonly server: net.Server,
    readonly path: string,
  ) {}

  static async listen(socketPath: string, report: () => unknown): Promise<StatusSocket> {
    fs.mkdirSync(path.dirname(socketPath), { recursive: true, mode: 0o700 });
    if (fs.existsSync(socketPath)) {
      // a socket left by a killed agent answers nobody; one that answers is another agent's
      if (await answers(socketPath)) throw new KeepError('INVALID_ARGUMENT', `another keep agent is running (its status socket ${socketPath} answers)`);
      fs.rmSync(socketPath, { force: true });
    }
    const server = net.createServer((conn) => {
      conn.on('error', () => undefined);
      conn.end(`${JSON.stringify(report())}\n`);
    });
    // created with the umask's mode: 0600 from the start, not chmod'ed after a window
    const umask = process.umask(0o177);
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(socketPath, () => resolve());
      });
    } finally {
      process.umask(umask);
    }
    fs.chmodSync(socketPath, 0o600);
    return new StatusSocket(server, socketPath);
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    fs.rmSync(this.path, { force: true });
  }
}

function answers(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = net.connect(socketPath);
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
}

/** Ask a running agent for its status. */
export function askStatus(socketPath: string, timeoutMs = 5000): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const c = net.connect(socketPath);
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      c.destroy();
      reject(new KeepError('UNAVAILABLE', `the keep agent at ${socketPath} did not answer within ${timeoutMs / 1000} s`));
    }, timeoutMs);
    c.on('data', (b: Buffer) => chunks.push(b));
    c.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      const why = e.code === 'ENOENT' || e.code === 'ECONNREFUSED' ? 'no keep agent is running there' : e.message;
      reject(new KeepError('UNAVAILABLE', `cannot reach the keep agent's status socket ${socketPath}: ${why}`));
    });
    c.on('end', () => {
      clearTimeout(timer);
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      } catch (e) {
        reject(new KeepError('UNAVAILABLE', `the keep agent at ${socketPath} answered no status: ${(e as Error).message}`));
      }
    });
  });
}
