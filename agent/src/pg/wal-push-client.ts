import net from 'node:net';
import path from 'node:path';
import { KeepError } from '@keep/core';
import type { WalPushResult } from './wal.js';

/** Why a push went direct: said on stderr only when the agent was there and declined. */
export interface ViaAgent {
  result?: WalPushResult;
  /** the agent answered but does not take this segment (no postgres job of the source, ...) */
  declined?: string;
}

/**
 * archive_command's fast path: hand the segment's absolute path to the
 * running agent (service/wal-archiver.ts) and wait for its answer, which
 * comes once the segment is committed. Resolves with no result when no
 * agent answers (no socket, refused, or the connection closed before an
 * answer): the caller then pushes directly, which is safe even when the
 * agent did store it, walPush being idempotent. An error the agent reports
 * about the segment (a conflict, an unreadable file) is thrown: PostgreSQL
 * keeps the segment and retries.
 */
export function pushViaAgent(socket: string, file: string, source: string): Promise<ViaAgent> {
  return new Promise((resolve, reject) => {
    const c = net.connect(socket);
    let text = '';
    let settled = false;
    const done = (f: () => void) => {
      if (settled) return;
      settled = true;
      c.destroy();
      f();
    };
    c.once('connect', () => c.write(`${JSON.stringify({ op: 'wal-push', file: path.resolve(file), source })}\n`));
    c.on('data', (b: Buffer) => {
      text += b.toString('utf8');
      const nl = text.indexOf('\n');
      if (nl < 0) return;
      let reply: { ok?: boolean; result?: WalPushResult; fallback?: boolean; error?: string; code?: string };
      try {
        reply = JSON.parse(text.slice(0, nl));
      } catch {
        return done(() => resolve({}));
      }
      if (reply.ok && reply.result) return done(() => resolve({ result: reply.result }));
      if (reply.fallback) return done(() => resolve({ declined: reply.error ?? 'declined' }));
      done(() => reject(new KeepError((reply.code as never) ?? 'INTERNAL', `the keep agent: ${reply.error ?? 'failed'}`)));
    });
    c.on('error', () => done(() => resolve({})));
    c.on('close', () => done(() => resolve({})));
  });
}
