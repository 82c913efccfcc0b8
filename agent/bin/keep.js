#!/usr/bin/env -S node --max-semi-space-size=1
// scrypt starts first, on the thread pool, for the key files remembered for KEEP_REPO (dist/repo/early-kek.js);
// then the one-file bundle loads (scripts/bundle.mjs: ~90 ms less start-up than ~300 modules) unless a tsc build is newer.
import fs from 'node:fs';
import { startEarlyKek } from '../dist/repo/early-kek.js';
startEarlyKek(process.env);
const age = (p) => { try { return fs.statSync(new URL(p, import.meta.url)).mtimeMs; } catch { return 0; } };
const fresh = age('../dist/keep.mjs') >= Math.max(...['../dist', '../../packages/core/dist', '../../packages/proto/dist'].map((d) => age(`${d}/.tsbuildinfo`)));
await import(fresh ? '../dist/keep.mjs' : '../dist/cli/main.js');
