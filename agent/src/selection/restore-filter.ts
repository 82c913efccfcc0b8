import { KeepError } from '@keep/core';
import { PatternList } from './pattern.js';

/** How restore treats one snapshot entry. */
export interface RestoreChoice {
  /** restore the entry itself (with its metadata) */
  selected: boolean;
  /** a directory to look into: something below it may be selected */
  descend: boolean;
}

/**
 * restore --include / --exclude, as restic's restore: patterns are matched
 * against the entry's path in the snapshot (`/home/me/file`). With includes,
 * an entry is restored when one matches it (the directories leading to it
 * are created, without their metadata); an excluded entry is not, nor
 * anything below it. A pattern that matched nothing is an error (checkUsed).
 */
export class RestoreFilter {
  constructor(
    private readonly include: PatternList,
    private readonly exclude: PatternList,
  ) {}

  get active(): boolean {
    return !this.include.empty || !this.exclude.empty;
  }

  choose(snapshotPath: string, isDir: boolean): RestoreChoice {
    if (!this.exclude.empty && this.exclude.test(snapshotPath).matched) return { selected: false, descend: false };
    if (this.include.empty) return { selected: true, descend: isDir };
    const { matched, childMayMatch } = this.include.test(snapshotPath, true);
    return { selected: matched, descend: isDir && (matched || childMayMatch) };
  }

  /** After the walk: a pattern that matched no entry of the snapshot ends the command (exit 1), named. */
  checkUsed(): void {
    const unused = [...this.include.unmatched().map((p) => `--include ${p}`), ...this.exclude.unmatched().map((p) => `--exclude ${p}`)];
    if (unused.length) throw new KeepError('NOT_FOUND', `${unused.join(', ')}: matches nothing in the snapshot (patterns match whole path components, e.g. /home/me/docs, docs or *.txt)`);
  }
}
