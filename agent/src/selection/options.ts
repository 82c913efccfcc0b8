import { BackupFilter, BackupRules, CACHEDIR_TAG } from './backup-filter.js';
import { FilesFrom, readFilesFrom } from './files-from.js';
import { compilePattern, PatternList } from './pattern.js';
import { readPatternFile } from './pattern-file.js';
import { RestoreFilter } from './restore-filter.js';
import { parseSize } from './size.js';

/** `keep backup`'s file-selection flags (restic's names), for terminal/args.ts's parse. */
export const BACKUP_SELECTION_OPTIONS = {
  exclude: { type: 'string', short: 'e', multiple: true },
  iexclude: { type: 'string', multiple: true },
  'exclude-file': { type: 'string', multiple: true },
  'iexclude-file': { type: 'string', multiple: true },
  'exclude-caches': { type: 'boolean' },
  'exclude-if-present': { type: 'string', multiple: true },
  'exclude-larger-than': { type: 'string' },
  'one-file-system': { type: 'boolean', short: 'x' },
  'files-from': { type: 'string', multiple: true },
  'files-from-verbatim': { type: 'string', multiple: true },
  'files-from-raw': { type: 'string', multiple: true },
} as const;

/** `keep restore`'s: the same patterns, matched against paths in the snapshot. */
export const RESTORE_SELECTION_OPTIONS = {
  include: { type: 'string', short: 'i', multiple: true },
  iinclude: { type: 'string', multiple: true },
  exclude: { type: 'string', short: 'e', multiple: true },
  iexclude: { type: 'string', multiple: true },
} as const;

type Flags = Partial<Record<string, string | string[] | boolean>>;
const list = (v: Flags[string]): string[] => (Array.isArray(v) ? v : []);

/** Mixed-case and case-folded patterns as one list (restic's restore: a path matches either). */
function patterns(caseSensitive: string[], folded: string[]): PatternList {
  return new PatternList([...caseSensitive.map((p) => compilePattern(p)), ...folded.map((p) => compilePattern(p, true))]);
}

/** The backup's paths: those named on the command line, then those the --files-from* lists name. */
export function backupPaths(positionals: string[], v: Flags, warn: (message: string) => void): string[] {
  const from: FilesFrom = { patterns: list(v['files-from']), verbatim: list(v['files-from-verbatim']), raw: list(v['files-from-raw']) };
  return [...positionals, ...readFilesFrom(from, warn)];
}

/** The backup's filter, or undefined when no flag selects anything out (the walk then asks nothing). */
export function backupFilter(v: Flags, paths: string[]): BackupFilter | undefined {
  const exclude = [...list(v.exclude), ...list(v['exclude-file']).flatMap((f) => readPatternFile(f, '--exclude-file'))];
  const iexclude = [...list(v.iexclude), ...list(v['iexclude-file']).flatMap((f) => readPatternFile(f, '--iexclude-file'))];
  const rules: BackupRules = {
    exclude: patterns(exclude, []),
    iexclude: patterns([], iexclude),
    ifPresent: [
      ...(v['exclude-caches'] ? [CACHEDIR_TAG] : []),
      ...list(v['exclude-if-present']).map((s) => {
        // NAME[:HEADER]: the file's first bytes must be HEADER
        const i = s.indexOf(':');
        return i < 0 ? { name: s } : { name: s.slice(0, i), header: Buffer.from(s.slice(i + 1)) };
      }),
    ],
    largerThan: typeof v['exclude-larger-than'] === 'string' ? parseSize(v['exclude-larger-than'], '--exclude-larger-than') : undefined,
    oneFileSystem: v['one-file-system'] === true,
  };
  const active = !rules.exclude.empty || !rules.iexclude.empty || rules.ifPresent.length > 0 || rules.largerThan !== undefined || rules.oneFileSystem;
  return active ? new BackupFilter(rules, paths) : undefined;
}

export function restoreFilter(v: Flags): RestoreFilter | undefined {
  const f = new RestoreFilter(patterns(list(v.include), list(v.iinclude)), patterns(list(v.exclude), list(v.iexclude)));
  return f.active ? f : undefined;
}
