import fs from 'node:fs';

/*
 * restore --delete: entries of the target that the snapshot lacks are
 * removed, only in directories the restore walks (so only inside the
 * target, and with --include / --exclude only what those select, as
 * restic's). Nothing is followed: every entry is lstat'ed, a symlink is
 * unlinked itself, and a directory is emptied entry by entry (each lstat'ed
 * again) before rmdir. A dry run walks the same way and removes nothing.
 */

/** One entry removed (or that would be): its path in the snapshot's namespace, and a file's size. */
export type OnRemoved = (rel: string, size: number) => void;

const SEP = Buffer.from('/');
const code = (e: unknown) => (e as NodeJS.ErrnoException).code;

function lstat(p: Buffer): fs.Stats | undefined {
  try {
    return fs.lstatSync(p);
  } catch (e) {
    if (code(e) === 'ENOENT') return undefined;
    throw e;
  }
}

/**
 * In target directory `dir` (the snapshot's `rel`, a real directory this
 * restore made or checked), remove each entry whose name is not in `names`
 * (latin1 keys: one char per byte) and that `selects` accepts.
 */
export function deleteExtras(dir: Buffer, rel: Buffer, names: Set<string>, selects: (rel: string, isDir: boolean) => boolean, dryRun: boolean, removed: OnRemoved): void {
  for (const name of fs.readdirSync(dir, { encoding: 'buffer' })) {
    if (names.has(name.toString('latin1'))) continue;
    const p = Buffer.concat([dir, SEP, name]);
    const r = Buffer.concat([rel, SEP, name]);
    const st = lstat(p);
    if (!st || !selects(r.toString(), st.isDirectory())) continue;
    removeTree(p, r, st, dryRun, removed);
  }
}

/** Remove `p` and, for a directory, everything below it, deepest first. */
export function removeTree(p: Buffer, rel: Buffer, st: fs.Stats, dryRun: boolean, removed: OnRemoved): void {
  if (st.isDirectory()) {
    for (const name of fs.readdirSync(p, { encoding: 'buffer' })) {
      const cp = Buffer.concat([p, SEP, name]);
      const child = lstat(cp);
      if (child) removeTree(cp, Buffer.concat([rel, SEP, name]), child, dryRun, removed);
    }
    if (!dryRun) fs.rmdirSync(p);
  } else if (!dryRun) {
    fs.unlinkSync(p);
  }
  removed(rel.toString(), st.isFile() ? st.size : 0);
}
