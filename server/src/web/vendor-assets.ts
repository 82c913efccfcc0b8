import fs from 'node:fs';
import { createRequire } from 'node:module';

/**
 * The chart library's browser files (uPlot), served by keepd itself: the
 * server may have no internet, so no CDN. keepd's bundle (scripts/bundle.mjs)
 * replaces this module with one holding the files' text; unbundled (dist/),
 * they are read from the installed package.
 */
const read = (file: string): string => fs.readFileSync(createRequire(import.meta.url).resolve(`uplot/dist/${file}`), 'utf8');

let cached: { js: string; css: string } | undefined;

export function chartLibrary(): { js: string; css: string } {
  cached ??= { js: read('uPlot.iife.min.js'), css: read('uPlot.min.css') };
  return cached;
}
