/**
 * The commands that look into snapshots without restoring them (restic's
 * dump, find, cat), through the real `keep` binary: on an embedded repository
 * and through a real keepd over loopback gRPC.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compareTrees, generateTree, initRepo, keep, prng, tempDirs, TreeInfo } from './helpers.js';
import { agentEnv, createToken, Keepd, keepdInit, keepJson, killAllKeepd, runKeep, startKeepd } from './keepd-harness.js';

type Run = (args: string[]) => Promise<{ code: number | null; stdout: string; stderr: string; stdoutBytes: Buffer }>;

/** `tar -x` of `archive` into a new directory under `dir`. */
function untar(archive: string, into: string): string {
  fs.mkdirSync(into);
  execFileSync('tar', ['-x', '-f', archive, '-C', into]);
  return into;
}

describe('keep dump on an embedded repository', () => {
  const tmp = tempDirs();
  let dir: string;
  let env: Record<string, string>;
  let tree: TreeInfo;
  const run: Run = (args) => keep(args, { env });

  beforeAll(async () => {
    dir = tmp.make('keep-dump-');
    ({ env } = await initRepo(dir));
    tree = generateTree(path.join(dir, 'src'), { largeFiles: [3 * 1024 * 1024 + 17], smallFiles: 60 });
    const r = await run(['backup', tree.root, '--source', 'files']);
    expect(r.code, r.stderr).toBe(0);
  });

  it('a file: its bytes on stdout, exactly', async () => {
    const big = path.join(tree.root, tree.large[0]);
    const r = await run(['dump', 'latest', big]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdoutBytes.equals(fs.readFileSync(big))).toBe(true);
    const empty = await run(['dump', 'latest', path.join(tree.root, 'empty.txt')]);
    expect(empty.code, empty.stderr).toBe(0);
    expect(empty.stdoutBytes.length).toBe(0);
  });

  it('a directory: a tar stream that `tar -x` turns back into the tree (modes, mtimes, symlinks, hardlinks, odd names)', async () => {
    const archive = path.join(dir, 'all.tar');
    const r = await run(['dump', 'latest', tree.root, '--target', archive]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('');
    // restic's layout: entries carry their path in the snapshot
    const out = untar(archive, path.join(dir, 'untar-all'));
    expect(compareTrees(tree.root, path.join(out, tree.root), { rootMeta: true })).toEqual([]);
  });

  it('SNAPSHOT:SUBDIR puts that directory\'s content at the archive\'s root', async () => {
    const archive = path.join(dir, 'sub.tar');
    const r = await run(['dump', `latest:${tree.root}`, '/modes', '--target', archive]);
    expect(r.code, r.stderr).toBe(0);
    const out = untar(archive, path.join(dir, 'untar-sub'));
    expect(fs.readdirSync(out)).toEqual(['modes']);
    expect(compareTrees(path.join(tree.root, 'modes'), path.join(out, 'modes'))).toEqual([]);
  });

  it('refuses what it cannot dump: a missing path, a symlink, another archive format', async () => {
    const missing = await run(['dump', 'latest', path.join(tree.root, 'no-such-file')]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/no-such-file is not in the snapshot/);
    const link = await run(['dump', 'latest', path.join(tree.root, 'links', 'relative')]);
    expect(link.code).toBe(2);
    expect(link.stderr).toMatch(/is a symlink/);
    const zip = await run(['dump', 'latest', tree.root, '--archive', 'zip']);
    expect(zip.code).toBe(2);
  });
});

describe('keep dump through keepd (grpc://)', () => {
  const tmp = tempDirs();
  let dir: string;
  let keepd: Keepd;
  let env: Record<string, string | undefined>;
  let src: string;
  const run: Run = (args) => runKeep(args, env);

  beforeAll(async () => {
    dir = tmp.make('keep-dump-grpc-');
    const data = path.join(dir, 'data');
    await keepdInit(data);
    const agent = await createToken(data, 'agent', { sources: ['files'] });
    keepd = await startKeepd(data);
    env = agentEnv(keepd, agent.token);
    await keepJson(['init', '--kdf-cost', '12'], env);
    src = path.join(dir, 'src');
    fs.mkdirSync(path.join(src, 'docs'), { recursive: true });
    // many chunks: the reads ahead go out together
    fs.writeFileSync(path.join(src, 'large.bin'), prng(11, 9 * 1024 * 1024 + 5));
    fs.writeFileSync(path.join(src, 'docs', 'readme.md'), '# keep\n');
    fs.symlinkSync('readme.md', path.join(src, 'docs', 'README'));
    await keepJson(['backup', src, '--source', 'files'], env);
  });

  afterAll(killAllKeepd);

  it('a file and a directory come back as they were', async () => {
    const file = await run(['dump', 'latest', path.join(src, 'large.bin')]);
    expect(file.code, file.stderr).toBe(0);
    expect(file.stdoutBytes.equals(fs.readFileSync(path.join(src, 'large.bin')))).toBe(true);

    const archive = path.join(dir, 'src.tar');
    const r = await run(['dump', 'latest', src, '--target', archive]);
    expect(r.code, r.stderr).toBe(0);
    const out = untar(archive, path.join(dir, 'untar'));
    expect(compareTrees(src, path.join(out, src), { rootMeta: true })).toEqual([]);
  });
});
