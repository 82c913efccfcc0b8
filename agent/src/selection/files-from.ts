import fs from 'node:fs';
import path from 'node:path';
import { globToRegExp } from './pattern.js';
import { readListFile, textLines } from './pattern-file.js';

/**
 * The three list files restic's backup reads its paths from:
 * --files-from (glob patterns, one a line, trimmed, `#` comments),
 * --files-from-verbatim (paths as they are, one a line) and
 * --files-from-raw (paths ended by NUL bytes). Empty entries are skipped.
 */
export interface FilesFrom {
  patterns?: string[];
  verbatim?: string[];
  raw?: string[];
}

/** The paths the list files name; `warn` is told of a pattern that names nothing (restic skips it too). */
export function readFilesFrom(from: FilesFrom, warn: (message: string) => void): string[] {
  const out: string[] = [];
  for (const file of from.patterns ?? []) {
    for (const line of textLines(readListFile(file, '--files-from'))) {
      const found = glob(line);
      if (found.length === 0) warn(`--files-from ${file}: pattern ${JSON.stringify(line)} does not match any file; skipped`);
      out.push(...found);
    }
  }
  for (const file of from.verbatim ?? []) {
    const text = readListFile(file, '--files-from-verbatim').toString('utf8');
    out.push(...text.split('\n').filter((l) => l !== ''));
  }
  for (const file of from.raw ?? []) {
    const text = readListFile(file, '--files-from-raw').toString('utf8');
    out.push(...text.split('\0').filter((l) => l !== ''));
  }
  return out;
}

const hasMeta = (s: string) => /[\\[\]*?]/.test(s);

/** Go's filepath.Glob: each component with wildcards matched against a directory listing (sorted); the rest must exist. */
export function glob(pattern: string): string[] {
  if (!hasMeta(pattern)) return exists(pattern) ? [pattern] : [];
  const absolute = pattern.startsWith('/');
  const parts = pattern.split('/').filter((p) => p !== '');
  let found = [absolute ? '/' : ''];
  for (const part of parts) {
    const next: string[] = [];
    for (const dir of found) {
      if (!hasMeta(part)) {
        const p = join(dir, part);
        if (exists(p)) next.push(p);
        continue;
      }
      const re = globToRegExp(part);
      let names: string[];
      try {
        names = fs.readdirSync(dir === '' ? '.' : dir).sort();
      } catch {
        continue; // not a directory, or not readable: nothing below it matches
      }
      for (const n of names) if (re.test(n)) next.push(join(dir, n));
    }
    found = next;
  }
  return found;
}

function join(dir: string, name: string): string {
  return dir === '' ? name : path.posix.join(dir, name);
}

function exists(p: string): boolean {
  try {
    fs.lstatSync(p);
    return true;
  } catch {
    return false;
  }
}
