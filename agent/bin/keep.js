#!/bin/sh
':' //; [ -n "$NODE_EXTRA_CA_CERTS" ] && export KEEP_DEFERRED_EXTRA_CA_CERTS="$NODE_EXTRA_CA_CERTS"; unset NODE_EXTRA_CA_CERTS; export MALLOC_ARENA_MAX="${MALLOC_ARENA_MAX:-2}" MALLOC_MMAP_THRESHOLD_="${MALLOC_MMAP_THRESHOLD_:-2097152}"; exec node --max-semi-space-size=1 --expose-gc "$0" "$@"
// The line above is for /bin/sh and a comment here. With NODE_EXTRA_CA_CERTS set, Node 20 parses every
// root certificate before running any code (~50 ms a command here), which a grpc:// or local repository never
// uses: the launcher moves it to KEEP_DEFERRED_EXTRA_CA_CERTS, and a grpcs:// connection adds those CAs itself
// (repo/remote.ts). Child processes get it back. Started as `node keep.js`, this file works as before.
// glibc's malloc, unless the caller set it: two arenas, not one per thread (the restore and seal workers), and
// buffers of 2 MiB and more mapped on their own and returned at free (by default the threshold climbs to 32 MiB
// after the first free, and freed buffers stayed resident: ~10-20 MiB of peak RSS). Not lower: at 256 KiB every
// 1 MiB chunk was a fresh mapping, faulted and zeroed page by page (a WAL push cost 0.23 CPU-s, 0.09 at 2 MiB;
// peak RSS of a backup +5 MiB; docs/PERFORMANCE.md).
// --expose-gc is what the seal and restore pools set for their workers (they collect their own garbage); set
// from the start, V8's flags are the same when the code cache is made (at exit) as when it is read, which V8
// checks: set later, every backup and restore rejected the cache the previous one wrote.
//
// Then scrypt starts, on the thread pool, for the key files remembered for KEEP_REPO (startup/launch.ts), and
// the one-file bundle runs (scripts/bundle.mjs: ~90 ms less start-up than ~300 modules) with a V8 code cache
// (startup/code-cache.ts); the tsc output instead when a tsc build is newer than the bundles.
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
const age = (p) => { try { return fs.statSync(new URL(p, import.meta.url)).mtimeMs; } catch { return 0; } };
const fresh = Math.min(age('../dist/keep.cjs'), age('../dist/launch.mjs')) >= Math.max(...['../dist', '../../packages/core/dist', '../../packages/proto/dist'].map((d) => age(`${d}/.tsbuildinfo`)));
const launch = await import(fresh ? '../dist/launch.mjs' : '../dist/startup/launch.js');
launch.startEarlyKek(process.env);
if (process.env.KEEP_DEFERRED_EXTRA_CA_CERTS) process.env.NODE_EXTRA_CA_CERTS = process.env.KEEP_DEFERRED_EXTRA_CA_CERTS;
// msgpackr's native string extractor takes ~15 ms to find and load, and tree nodes hold byte names and short keys.
process.env.MSGPACKR_NATIVE_ACCELERATION_DISABLED ??= 'true';
if (fresh) launch.runBundle(fileURLToPath(new URL('../dist/keep.cjs', import.meta.url)), launch.cacheDir(process.env));
else await import('../dist/cli/main.js');
