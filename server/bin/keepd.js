#!/usr/bin/env node
// Runs the one-file bundle (scripts/bundle.mjs) unless a tsc build is newer than it: keepd starts faster, and so do tests.
import fs from 'node:fs';
const age = (p) => { try { return fs.statSync(new URL(p, import.meta.url)).mtimeMs; } catch { return 0; } };
const fresh = age('../dist/keepd.mjs') >= Math.max(...['../dist', '../../packages/core/dist', '../../packages/proto/dist'].map((d) => age(`${d}/.tsbuildinfo`)));
await import(fresh ? '../dist/keepd.mjs' : '../dist/cli/main.js');
