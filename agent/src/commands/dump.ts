import { Id, KeepError } from '@keep/core';
import { parse } from '../terminal/args.js';
import { openSink } from '../browse/byte-sink.js';
import { fileContent } from '../browse/file-content.js';
import { locate, pathParts, splitSnapshotRef } from '../browse/snapshot-path.js';
import { dumpArchive } from '../browse/archive-dump.js';
import { TarWriter } from '../browse/tar-writer.js';
import { ZipWriter } from '../browse/zip-writer.js';
import { openRepositoryWhile } from '../repo/open.js';
import { TreeReader } from '../tree/tree-reader.js';
import { allowUnauthenticated, selectSnapshot } from './select.js';

const USAGE = 'usage: keep dump SNAPSHOT[:SUBDIR] PATH [--archive tar|zip] [--target FILE] [--source N] [--at TIME] [--allow-unauthenticated]';

/**
 * restic's dump: a file's content, or a directory as a tar (or zip) stream, to stdout
 * (or --target FILE). SNAPSHOT:SUBDIR makes SUBDIR the archive's root;
 * otherwise a directory's entries carry their path in the snapshot.
 */
export async function dumpCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parse(argv, {
    archive: { type: 'string', short: 'a' },
    target: { type: 'string', short: 't' },
    source: { type: 'string' },
    at: { type: 'string' },
    'allow-unauthenticated': { type: 'boolean' },
  });
  if (positionals.length !== 2) throw new KeepError('INVALID_ARGUMENT', USAGE);
  const format = values.archive ?? 'tar';
  if (format !== 'tar' && format !== 'zip') throw new KeepError('INVALID_ARGUMENT', `--archive takes tar or zip, not ${format}`);
  if (values.json) throw new KeepError('INVALID_ARGUMENT', 'dump writes the file or archive itself; it has no --json form');
  const { snapshot: ref, path: sub } = splitSnapshotRef(positionals[0]);
  const { repo, meanwhile: list } = await openRepositoryWhile((conn) => conn.snapshots(values.source ? { source: values.source } : {}));
  try {
    const snap = selectSnapshot(repo.keys, list, ref, { source: values.source, at: values.at, allowUnauthenticated: allowUnauthenticated(values['allow-unauthenticated']) });
    // The snapshot's own source's bytes: its copy of a chunk another source stored first.
    repo.conn.readAs(snap.source);
    const trees = new TreeReader(repo);
    let base: Id = Buffer.from(snap.root, 'hex');
    if (sub !== undefined) {
      const at = await locate(trees, base, sub);
      if (!at.tree) throw new KeepError('INVALID_ARGUMENT', `${positionals[0]}: ${at.path} is not a directory`);
      base = at.tree;
    }
    const found = await locate(trees, base, positionals[1]);
    if (found.entry?.type === 'symlink') throw new KeepError('INVALID_ARGUMENT', `${found.path} is a symlink (to ${found.entry.target!.toString()}); dump what it points to`);
    // an archive is binary: never onto a terminal (restic refuses too)
    if (found.tree && !values.target && process.stdout.isTTY) throw new KeepError('INVALID_ARGUMENT', 'stdout is a terminal: redirect it, or give --target FILE');
    const out = openSink(values.target);
    if (found.tree) {
      const archive = format === 'zip' ? new ZipWriter(out) : new TarWriter(out);
      await dumpArchive(repo, trees, { tree: found.tree, entry: found.entry }, Buffer.from(pathParts(positionals[1]).join('/')), archive);
    } else for await (const piece of fileContent(repo, found.node!, found.entry!, found.path)) await out.write(piece);
    await out.close();
  } finally {
    await repo.conn.close();
  }
}
