import fs from 'node:fs';
import { KeepError } from '@keep/core';

/**
 * `$NAME` and `${NAME}` replaced by the environment's value (empty when
 * unset), `$$` by one `$`: restic expands exclude files the same way, so a
 * literal dollar sign is written twice.
 */
export function expandEnv(line: string, env: NodeJS.ProcessEnv = process.env): string {
  return line.replace(/\$(\$|\{([^}]*)\}|([A-Za-z_][A-Za-z0-9_]*))/g, (_, all: string, braced?: string, bare?: string) => {
    if (all === '$') return '$';
    return env[braced ?? bare ?? ''] ?? '';
  });
}

/** The text of FILE, or of standard input for `-`; a file that cannot be read ends the command. */
export function readListFile(file: string, option: string): Buffer {
  try {
    return fs.readFileSync(file === '-' ? 0 : file);
  } catch (e) {
    throw new KeepError('NOT_FOUND', `${option} ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

/** One line per entry, a byte-order mark and CRs dropped, each line trimmed; empty lines and `#` comments skipped. */
export function textLines(text: Buffer): string[] {
  return text
    .toString('utf8')
    .replace(/^\uFEFF/, '')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
}

/** The patterns of an exclude file (--exclude-file / --iexclude-file): environment variables expanded. */
export function readPatternFile(file: string, option: string): string[] {
  return textLines(readListFile(file, option)).map((l) => expandEnv(l));
}
