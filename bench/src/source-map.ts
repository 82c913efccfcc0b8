import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The source file behind a position in a bundle (scripts/bundle.mjs writes linked source maps),
 * so that a profile of the shipped one-file bundles still names each function's own file. Only
 * the file is looked up, not the line: the stage rules (cpuprofile-stages.ts) read paths.
 */

const B64 = new Map([...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'].map((c, i) => [c, i]));

/** Per generated line: [generated column, source index] pairs, in column order. */
type Lines = Int32Array[];

function decode(mappings: string): Lines {
  const lines: Lines = [];
  let src = 0;
  for (const line of mappings.split(';')) {
    const cols: number[] = [];
    let col = 0;
    for (const seg of line.split(',')) {
      if (!seg) continue;
      const v: number[] = [];
      let shift = 0;
      let value = 0;
      for (const ch of seg) {
        const d = B64.get(ch)!;
        value += (d & 31) << shift;
        if (d & 32) shift += 5;
        else {
          v.push(value & 1 ? -(value >>> 1) : value >>> 1);
          value = 0;
          shift = 0;
        }
      }
      col += v[0];
      if (v.length >= 4) {
        src += v[1];
        cols.push(col, src);
      }
    }
    lines.push(Int32Array.from(cols));
  }
  return lines;
}

interface Loaded {
  sources: string[];
  lines: Lines;
}

const cache = new Map<string, Loaded | null>();

function load(url: string): Loaded | null {
  if (cache.has(url)) return cache.get(url)!;
  let out: Loaded | null = null;
  try {
    const file = url.startsWith('file://') ? fileURLToPath(url) : url;
    if (path.isAbsolute(file) && fs.existsSync(`${file}.map`)) {
      const m = JSON.parse(fs.readFileSync(`${file}.map`, 'utf8')) as { sources: string[]; sourceRoot?: string; mappings: string };
      const base = path.resolve(path.dirname(file), m.sourceRoot ?? '');
      out = { sources: m.sources.map((s) => path.resolve(base, s)), lines: decode(m.mappings) };
    }
  } catch {
    out = null;
  }
  cache.set(url, out);
  return out;
}

/**
 * The file `url` was built from at (0-based) `line`, `column`, with our TypeScript sources named
 * as their tsc output (packages/core/src/x.ts as packages/core/dist/x.js, which the rules know);
 * `url` itself when it has no source map.
 */
export function originalFile(url: string, line: number, column: number): string {
  const m = url ? load(url) : null;
  const cols = m?.lines[line];
  if (!m || !cols || !cols.length) return url;
  let src = cols[1];
  for (let i = 0; i < cols.length && cols[i] <= column; i += 2) src = cols[i + 1];
  const file = m.sources[src];
  if (!file) return url;
  return file.includes('/node_modules/') ? file : file.replace(/\/src\/(.*)\.ts$/, '/dist/$1.js');
}
