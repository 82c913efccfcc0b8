import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { deriveKek } from '@keep/core/kdf';
import { walPushToAgent } from '../pg/agent-socket.js';
import { cacheDir, writeCacheFile } from './cache-file.js';
import { mark } from './timing.js';

/**
 * Key derivation started before anything else.
 *
 * Every command spends ~0.26 s in scrypt (docs/ARCHITECTURE.md, "Keys"), and
 * until now it waited for start-up and the repository's answer before
 * starting. Key files are not secret (keepd stores them, and their KDF
 * parameters are what any reader of the repository sees), so after an unlock
 * the agent keeps the salt and parameters of the repository's key files in its
 * cache directory; the next command starts scrypt for them on the thread pool
 * as its very first act (bin/keep.js), and unlock takes the result when the
 * repository still holds a key file with that salt and those parameters and
 * the passphrase is the same. Nothing secret is written: only what the
 * repository already publishes. Any failure here just means no head start.
 *
 * It imports only `@keep/core/kdf` (the very derivation unlock uses, and
 * nothing heavier): bin/keep.js loads this file before the bundle, and the
 * bundle holds its own copy, so the pending derivations live on a global.
 */

/** What is remembered of a key file: its public scrypt salt and parameters. */
interface KdfParams {
  salt: string;
  N: number;
  r: number;
  p: number;
}

interface Pending {
  password: string;
  kek: Promise<Buffer>;
}

const SLOT = Symbol.for('keep.earlyKek');
const pendingMap = (): Map<string, Pending> => ((globalThis as Record<symbol, unknown>)[SLOT] ??= new Map()) as Map<string, Pending>;
const slotKey = (k: KdfParams) => `${k.salt}:${k.N}:${k.r}:${k.p}`;

function paramsFile(location: string, env: NodeJS.ProcessEnv): string {
  const tag = crypto.createHash('sha256').update(location).digest('hex').slice(0, 24);
  return path.join(cacheDir(env), `kdf-${tag}.json`);
}

/** The passphrase as readPassword sees it, or undefined (no head start without one). */
function passwordOf(env: NodeJS.ProcessEnv): string | undefined {
  if (env.KEEP_PASSWORD !== undefined) return env.KEEP_PASSWORD;
  if (!env.KEEP_PASSWORD_FILE) return undefined;
  try {
    return fs.readFileSync(env.KEEP_PASSWORD_FILE, 'utf8').replace(/\r?\n$/, '');
  } catch {
    return undefined;
  }
}

/** Start scrypt for the key files remembered for KEEP_REPO (at most 4: one per passphrase is the usual). */
export function startEarlyKek(env: NodeJS.ProcessEnv = process.env): void {
  try {
    if (!env.KEEP_REPO || env.KEEP_NO_KDF_CACHE) return;
    // archive_command handing its segment to a running agent: no key needed, and the CPU is the agent's
    if (walPushToAgent(process.argv.slice(2), env)) return;
    const password = passwordOf(env);
    if (password === undefined || password.length === 0) return;
    const remembered = JSON.parse(fs.readFileSync(paramsFile(env.KEEP_REPO, env), 'utf8')) as KdfParams[];
    if (!Array.isArray(remembered)) return;
    for (const k of remembered.slice(0, 4)) {
      if (typeof k.salt !== 'string' || ![k.N, k.r, k.p].every(Number.isSafeInteger)) continue;
      const kek = deriveKek(password, { name: 'scrypt', salt: k.salt, N: k.N, r: k.r, p: k.p });
      kek.then(() => mark('early scrypt done'), () => undefined); // unlock derives afresh if this fails
      pendingMap().set(slotKey(k), { password, kek });
    }
    mark('early scrypt started');
  } catch {
    // no cache yet, unreadable or malformed: no head start
  }
}

/** A derivation started early for exactly these parameters and this passphrase. */
export function takeEarlyKek(k: KdfParams, password: string): Promise<Buffer> | undefined {
  const p = pendingMap().get(slotKey(k));
  return p && p.password === password ? p.kek : undefined;
}

/** Remember the repository's key file parameters for the next command (when they changed). */
export function rememberKdfParams(location: string, kdfs: KdfParams[], env: NodeJS.ProcessEnv = process.env): void {
  if (env.KEEP_NO_KDF_CACHE) return;
  try {
    const file = paramsFile(location, env);
    const text = JSON.stringify(kdfs.map(({ salt, N, r, p }) => ({ salt, N, r, p })));
    let old: string | undefined;
    try {
      old = fs.readFileSync(file, 'utf8');
    } catch {
      /* first time */
    }
    if (old === text) return;
    writeCacheFile(file, text);
  } catch {
    // a read-only home costs the head start, nothing else
  }
}
