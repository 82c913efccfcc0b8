import fs from 'node:fs';
import path from 'node:path';
import { DEFAULT_STATE_DIR } from '../service/default-paths.js';

/* Node's modules only: the launcher (startup/early-kek.ts) reads this before the bundle loads. */

/** --socket, else KEEP_AGENT_SOCKET, else the default state directory's agent.sock. */
export function agentSocket(flag: string | undefined, env: NodeJS.ProcessEnv): string {
  return flag ?? (env.KEEP_AGENT_SOCKET || path.join(DEFAULT_STATE_DIR, 'agent.sock'));
}

/**
 * The agent's socket when argv is a `pg wal-push` that will ask it first
 * (not --direct) and the socket exists: the launcher then starts no early
 * scrypt (startup/early-kek.ts), which only a fallback would use and which
 * would take the CPU the agent's push needs.
 */
export function walPushToAgent(argv: string[], env: NodeJS.ProcessEnv): string | undefined {
  const at = argv.indexOf('pg');
  if (at < 0 || !['wal-push', 'archive-push'].includes(argv[at + 1]) || argv.includes('--direct')) return undefined;
  const flag = argv.findIndex((a) => a === '--socket' || a.startsWith('--socket='));
  const socket = agentSocket(flag < 0 ? undefined : argv[flag].includes('=') ? argv[flag].slice('--socket='.length) : argv[flag + 1], env);
  return fs.existsSync(socket) ? socket : undefined;
}
