import crypto from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import vm from 'node:vm';
import { writeCacheFile } from './cache-file.js';
import { mark } from './timing.js';

/** The cache a command line uses: `keep backup --help` compiles help's functions, not backup's, so it shares help's cache. */
function cacheCommand(argv: string[]): string | undefined {
  return argv.includes('--help') || argv.includes('-h') ? 'help' : argv[0];
}

/**
 * Runs the agent's one-file bundle (agent/dist/keep.cjs, scripts/bundle.mjs)
 * with a V8 code cache, so a command does not parse and compile the same 1.3 MB
 * again at every start (~80 ms of CPU here, more than a third of `keep help`).
 * Node 20 offers code caches for scripts only (vm.Script's cachedData), hence a
 * CommonJS bundle run as a script.
 *
 * One cache file per command (each holds the functions its command compiled),
 * in the cache directory ($KEEP_CACHE_DIR, as for the KDF parameters), written
 * after a command that exits 0 found none it could use. The file starts with
 * the SHA-256 of the bundle it was made from and of its own V8 data: V8 itself
 * checks only its version, its flags and the source's length (a release build
 * has no checksum of the data), so a cache of another build or a damaged one
 * is never handed to it. V8 rejects a cache of another Node or other flags (the
 * next successful run replaces it). Being code, it is read only when this user
 * owns it and no one else may write it (it is written 0600 in a 0700 directory).
 * A missing, foreign or damaged cache costs the compile time, nothing else.
 * KEEP_NO_CODE_CACHE=1 turns it off.
 */
export function runBundle(bundle: string, cacheDir: string, env: NodeJS.ProcessEnv = process.env, command = cacheCommand(process.argv.slice(2))): void {
  const source = fs.readFileSync(bundle, 'utf8');
  const digest = sha256(source);
  const file = env.KEEP_NO_CODE_CACHE ? undefined : path.join(cacheDir, `code-${/^[a-z][a-z-]{0,15}$/.test(command ?? '') ? command : 'other'}.v8`);
  const cached = file ? readCache(file, digest) : undefined;
  const script = new vm.Script(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, {
    filename: bundle,
    cachedData: cached,
  });
  mark(`bundle compiled, code cache ${!cached ? 'none' : script.cachedDataRejected ? 'rejected' : 'used'}`);
  if (file && (!cached || script.cachedDataRejected)) {
    // after the command ran: the cache then holds the functions it compiled, not only the top level
    process.once('exit', (code) => {
      if (code === 0) writeCache(file, digest, script);
    });
  }
  const module = { exports: {} };
  (script.runInThisContext() as (...a: unknown[]) => void).call(module.exports, module.exports, createRequire(bundle), module, bundle, path.dirname(bundle));
}

/** "keepv8c1" || SHA-256 of the bundle || SHA-256 of the V8 data || V8 data */
const MAGIC = Buffer.from('keepv8c1');
const HEADER = MAGIC.length + 64;
const sha256 = (b: Buffer | string): Buffer => crypto.createHash('sha256').update(b).digest();

/** The V8 data of a cache made from this very bundle, or undefined. */
function readCache(file: string, digest: Buffer): Buffer | undefined {
  let fd: number | undefined;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
    const st = fs.fstatSync(fd);
    if (!st.isFile() || (process.getuid && st.uid !== process.getuid()) || (st.mode & 0o022) !== 0) return undefined;
    const b = fs.readFileSync(fd);
    if (b.length <= HEADER || !b.subarray(0, MAGIC.length).equals(MAGIC) || !b.subarray(MAGIC.length, MAGIC.length + 32).equals(digest)) return undefined;
    const data = b.subarray(HEADER);
    return sha256(data).equals(b.subarray(MAGIC.length + 32, HEADER)) ? data : undefined;
  } catch {
    return undefined; // none yet, or unreadable
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/** (Unwritable: the next start compiles the bundle, nothing else.) */
function writeCache(file: string, digest: Buffer, script: vm.Script): void {
  let data: Buffer;
  try {
    data = script.createCachedData();
  } catch {
    return;
  }
  writeCacheFile(file, Buffer.concat([MAGIC, digest, sha256(data), data]));
}
