#!/bin/sh
':' //; ulimit -n "$(ulimit -H -n)" 2>/dev/null; exec node --max-semi-space-size=4 --initial-old-space-size=48 "$0" "$@"
// The line above is for /bin/sh and a comment here: it raises keepd's soft open-file limit to the hard one
// before Node starts (every connection is a descriptor; at a soft limit of 1,024, a flood of idle connections
// left no descriptor for an agent). keepd caps its connections below whatever limit it runs with
// (server/src/net/connection-limits.ts). Started as `node keepd.js`, this file works as before.
// --max-semi-space-size=4: V8 let the young generation grow while blobs streamed in (keepd's anonymous RSS
// 101 -> 157 MiB from the first backup to the second, the JS heap in use ~38 MiB); capped, keepd peaked at
// 151-163 MiB instead of 216-245 over five real-data generations, at no measured CPU cost (docs/PERFORMANCE.md).
// --initial-old-space-size=48: the small old generation (~15 MB live) filled with what each upload promoted, and
// V8 (with its memory reducer between bursts) ran ~1.5 mark-compacts per 16 MiB WAL push, ~50 ms of GC each push;
// with it 2-4 in 18 pushes (~5-10 ms a push), peak RSS 164 vs 158 MiB over the real-data set (docs/POSTGRESQL.md).
// Runs the one-file bundle (scripts/bundle.mjs) unless a tsc build is newer than it: keepd starts faster, and so do tests.
import fs from 'node:fs';
const age = (p) => { try { return fs.statSync(new URL(p, import.meta.url)).mtimeMs; } catch { return 0; } };
const fresh = age('../dist/keepd.mjs') >= Math.max(...['../dist', '../../packages/core/dist', '../../packages/proto/dist'].map((d) => age(`${d}/.tsbuildinfo`)));
await import(fresh ? '../dist/keepd.mjs' : '../dist/cli/main.js');
