/**
 * What bin/keep.js runs before the program: scrypt's head start and the
 * bundle's loader. scripts/bundle.mjs makes it one file (dist/launch.mjs) that
 * imports only Node's modules: every module resolved before scrypt starts
 * delays it (~4 ms for these few, mostly @keep/core/kdf's package lookup).
 */
export { cacheDir } from './cache-file.js';
export { startEarlyKek } from './early-kek.js';
export { runBundle } from './code-cache.js';
