import path from 'node:path';
import { KeepError, openMeta, parseTime, Snapshot } from '@keep/core';
import { parse } from '../terminal/args.js';
import { printJson } from '../terminal/output.js';
import { findEntries } from '../browse/find-entries.js';
import { locate } from '../browse/snapshot-path.js';
import { openRepositoryWhile, Unlocked } from '../repo/open.js';
import { stderrWarn, usableSnapshots } from '../repo/authentic.js';
import { TreeReader } from '../tree/tree-reader.js';
import { compilePattern } from '../selection/pattern.js';
import { describeEntry } from './ls.js';
import { allowUnauthenticated, selectSnapshot } from './select.js';

const USAGE = 'usage: keep find PATTERN... [--snapshot ID]... [--source N]... [--host H]... [--path P]... [--tag T[,T]]... [--ignore-case] [--long] [--oldest TIME] [--newest TIME] [--reverse] [--json]';

/**
 * restic's find: the entries whose path a pattern matches, in every snapshot
 * (newest first; --reverse: oldest first) or in those named or narrowed down.
 */
export async function findCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parse(argv, {
    snapshot: { type: 'string', short: 's', multiple: true },
    source: { type: 'string', multiple: true },
    host: { type: 'string', short: 'H', multiple: true },
    path: { type: 'string', multiple: true },
    tag: { type: 'string', multiple: true },
    'ignore-case': { type: 'boolean', short: 'i' },
    long: { type: 'boolean', short: 'l' },
    oldest: { type: 'string', short: 'O' },
    newest: { type: 'string', short: 'N' },
    reverse: { type: 'boolean', short: 'R' },
    'allow-unauthenticated': { type: 'boolean' },
  });
  if (positionals.length === 0) throw new KeepError('INVALID_ARGUMENT', USAGE);
  const patterns = positionals.map((p) => {
    if (p.startsWith('!')) throw new KeepError('INVALID_ARGUMENT', `find takes no negated pattern: ${p}`);
    return compilePattern(p, values['ignore-case']);
  });
  const bounds = { oldest: values.oldest ? parseTime(values.oldest) : undefined, newest: values.newest ? parseTime(values.newest) : undefined };
  const { repo, meanwhile: list } = await openRepositoryWhile((conn) => conn.snapshots());
  try {
    const trees = new TreeReader(repo);
    const snaps = await chooseSnapshots(repo, trees, list, values);
    const results = [];
    for (const snap of values.reverse ? snaps : [...snaps].reverse()) {
      repo.conn.readAs(snap.source);
      const matches = [];
      for await (const { path: p, entry } of findEntries(trees, Buffer.from(snap.root, 'hex'), { patterns, ...bounds })) matches.push(describeEntry(p, entry));
      if (!matches.length) continue;
      if (values.json) results.push({ snapshot: snap.id, source: snap.source, time: snap.time, hits: matches.length, matches });
      else print(snap, matches, !!values.long);
    }
    if (values.json) printJson(results);
  } finally {
    await repo.conn.close();
  }
}

type Values = { snapshot?: string[]; source?: string[]; host?: string[]; path?: string[]; tag?: string[]; 'allow-unauthenticated'?: boolean };

/**
 * --snapshot IDs as named (each must be usable), else every usable snapshot of
 * the --source(s) and --host(s), of every --path and with one of the --tag
 * lists (each a comma list it has all of).
 */
async function chooseSnapshots(repo: Unlocked, trees: TreeReader, list: Snapshot[], v: Values): Promise<Snapshot[]> {
  const allow = allowUnauthenticated(v['allow-unauthenticated']);
  if (v.snapshot?.length) return v.snapshot.map((id) => selectSnapshot(repo.keys, list, id, { allowUnauthenticated: allow }));
  const tagSets = (v.tag ?? []).map((t) => t.split(',').filter(Boolean));
  const out: Snapshot[] = [];
  for (const s of usableSnapshots(repo.keys, list, { allowUnauthenticated: allow, warn: stderrWarn })) {
    if (v.source?.length && !v.source.includes(s.source)) continue;
    if (v.host?.length && !v.host.includes(s.host)) continue;
    if (tagSets.length && !tagSets.some((set) => set.every((t) => s.tags.includes(t)))) continue;
    if (v.path?.length && !(await holdsPaths(repo, trees, s, v.path))) continue;
    out.push(s);
  }
  return out;
}

/**
 * restic's --path: the snapshot backed up each of `paths` (its sealed record of
 * them). A record from before paths were recorded: its tree holds each one.
 */
async function holdsPaths(repo: Unlocked, trees: TreeReader, s: Snapshot, paths: string[]): Promise<boolean> {
  const recorded = openMeta(repo.keys, s)?.paths ?? [];
  if (recorded.length) return paths.every((p) => recorded.includes(path.resolve(p)));
  repo.conn.readAs(s.source);
  for (const p of paths) {
    try {
      await locate(trees, Buffer.from(s.root, 'hex'), p);
    } catch (e) {
      if (e instanceof KeepError && e.code === 'NOT_FOUND') return false;
      throw e;
    }
  }
  return true;
}

function print(snap: Snapshot, matches: ReturnType<typeof describeEntry>[], long: boolean): void {
  console.log(`Found matching entries in snapshot ${snap.id.slice(0, 8)} from ${snap.time} (source ${snap.source})`);
  for (const r of matches) {
    if (long) console.log(`${r.type.padEnd(7)} ${r.mode} ${String(r.uid).padStart(5)} ${String(r.gid).padStart(5)} ${String(r.size).padStart(12)} ${r.mtime}  ${r.path}${r.target ? ` -> ${r.target}` : ''}`);
    else console.log(r.path);
  }
  console.log('');
}
