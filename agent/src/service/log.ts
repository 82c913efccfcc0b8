import { createRequire } from 'node:module';
import type { Logger } from 'pino';

export type { Logger } from 'pino';

/**
 * The agent's JSON-lines log on stdout (journald keeps it under systemd).
 * pino is required here, on first use, not imported: the agent's bundle is
 * loaded by every `keep` command, which should not pay for a logger only the
 * service uses (scripts/bundle.mjs keeps pino external). Writes are
 * synchronous, so the lines before an exit are never lost.
 */
export function createLogger(): Logger {
  const pino = createRequire(import.meta.url)('pino') as typeof import('pino');
  return pino.default({ base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime }, pino.destination({ dest: 1, sync: true }));
}
