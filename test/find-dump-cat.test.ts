/**
 * The commands that look into snapshots without restoring them (restic's
 * dump, find, cat), through the real `keep` binary: on an embedded repository
 * and through a real keepd over loopback gRPC.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compareTrees, generateTree, initRepo, keep, KEEP_BIN, prng, tempDirs, TreeInfo } from './helpers.js';
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

  it('--archive zip: unzip gives back content, modes, symlinks and mtimes (whole seconds); hardlinks as copies', async () => {
    const archive = path.join(dir, 'hard.zip');
    const r = await run(['dump', `latest:${tree.root}`, '/', '--archive', 'zip', '--target', archive]);
    expect(r.code, r.stderr).toBe(0);
    const out = path.join(dir, 'unzip');
    execFileSync('unzip', ['-q', archive, '-d', out]);
    for (const rel of ['hard/one', 'hard/two', 'hard/sub/three', 'hard/sub/pair-b', tree.large[0], 'modes/exec.sh', 'modes/private', 'empty.txt']) {
      const a = fs.lstatSync(path.join(tree.root, rel));
      const b = fs.lstatSync(path.join(out, rel));
      expect(fs.readFileSync(path.join(out, rel)).equals(fs.readFileSync(path.join(tree.root, rel))), rel).toBe(true);
      expect([rel, b.mode & 0o7777, Math.floor(b.mtimeMs / 1000)]).toEqual([rel, a.mode & 0o7777, Math.floor(a.mtimeMs / 1000)]);
    }
    expect(fs.readlinkSync(path.join(out, 'links', 'relative'))).toBe('../with space.txt');
    expect(fs.readdirSync(path.join(out, 'nested-empty', 'a'))).toEqual(['b']);
    // a zip has no hardlinks: each name is a file of its own
    expect(fs.statSync(path.join(out, 'hard', 'one')).ino).not.toBe(fs.statSync(path.join(out, 'hard', 'two')).ino);
  });

  it('refuses what it cannot dump: a missing path, a symlink, another archive format', async () => {
    const missing = await run(['dump', 'latest', path.join(tree.root, 'no-such-file')]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/no-such-file is not in the snapshot/);
    const link = await run(['dump', 'latest', path.join(tree.root, 'links', 'relative')]);
    expect(link.code).toBe(2);
    expect(link.stderr).toMatch(/is a symlink/);
    const rar = await run(['dump', 'latest', tree.root, '--archive', 'rar']);
    expect(rar.code).toBe(2);
    // an archive onto a terminal (util-linux `script` gives it one)
    const tty = execFileSync('script', ['-qec', `${KEEP_BIN} dump latest ${tree.root}; echo "exit=$?"`, '/dev/null'], { env: { ...process.env, ...env } }).toString();
    expect(tty).toMatch(/stdout is a terminal/);
    expect(tty).toMatch(/exit=2/);
  });
});

describe('keep find on an embedded repository', () => {
  const tmp = tempDirs();
  let env: Record<string, string>;
  let proj: string;
  let other: string;
  const ids: Record<string, string> = {};
  const run: Run = (args) => keep(args, { env });
  const find = async (args: string[]) => {
    const r = await run(['find', ...args, '--json']);
    expect(r.code, r.stderr).toBe(0);
    return (JSON.parse(r.stdout) as any[]).map((s) => [s.snapshot, s.matches.map((m: any) => m.path)]);
  };
  const backup = async (dir: string, source: string, extra: string[] = []) => {
    const r = await run(['backup', dir, '--source', source, ...extra, '--json']);
    expect(r.code, r.stderr).toBe(0);
    return JSON.parse(r.stdout).snapshot as string;
  };

  beforeAll(async () => {
    const dir = tmp.make('keep-find-');
    ({ env } = await initRepo(dir));
    proj = path.join(dir, 'proj');
    other = path.join(dir, 'other');
    fs.mkdirSync(path.join(proj, 'sub', 'deep'), { recursive: true });
    fs.mkdirSync(other);
    fs.writeFileSync(path.join(proj, 'a.txt'), 'a\n');
    fs.writeFileSync(path.join(proj, 'sub', 'notes.md'), 'notes\n');
    fs.writeFileSync(path.join(proj, 'sub', 'deep', 'a.txt'), 'deep a\n');
    ids.p1 = await backup(proj, 'proj', ['--tag', 'first']);
    fs.writeFileSync(path.join(proj, 'B.TXT'), 'upper\n');
    fs.rmSync(path.join(proj, 'sub', 'deep', 'a.txt'));
    ids.p2 = await backup(proj, 'proj');
    fs.writeFileSync(path.join(other, 'a.txt'), 'other a\n');
    ids.o1 = await backup(other, 'other');
  });

  it('a name matches at any depth, in every snapshot, newest first (--reverse: oldest first)', async () => {
    const a = (d: string) => path.join(d, 'a.txt');
    expect(await find(['a.txt'])).toEqual([
      [ids.o1, [a(other)]],
      [ids.p2, [a(proj)]],
      [ids.p1, [a(proj), a(path.join(proj, 'sub', 'deep'))]],
    ]);
    expect((await find(['a.txt', '--reverse'])).map((x) => x[0])).toEqual([ids.p1, ids.p2, ids.o1]);
    // a glob, several patterns: any of them
    expect(await find(['*.md', 'B.*', '--snapshot', ids.p2])).toEqual([[ids.p2, [path.join(proj, 'B.TXT'), path.join(proj, 'sub', 'notes.md')]]]);
  });

  it('a pattern with `/` matches the path; a matching directory brings what is below it (restic)', async () => {
    expect(await find(['sub/*.md'])).toEqual([
      [ids.p2, [path.join(proj, 'sub', 'notes.md')]],
      [ids.p1, [path.join(proj, 'sub', 'notes.md')]],
    ]);
    const deep = path.join(proj, 'sub', 'deep');
    expect(await find([deep])).toEqual([
      [ids.p2, [deep]],
      [ids.p1, [deep, path.join(deep, 'a.txt')]],
    ]);
    // anchored at the root: the same name elsewhere does not match
    expect(await find([path.join(other, 'a.txt')])).toEqual([[ids.o1, [path.join(other, 'a.txt')]]]);
  });

  it('--ignore-case, --snapshot, --source, --path, --tag narrow it; no match is an empty list', async () => {
    expect(await find(['b.txt'])).toEqual([]);
    expect(await find(['b.txt', '--ignore-case'])).toEqual([[ids.p2, [path.join(proj, 'B.TXT')]]]);
    expect((await find(['a.txt', '--snapshot', ids.p1.slice(0, 8), '--snapshot', ids.o1])).map((x) => x[0])).toEqual([ids.o1, ids.p1]);
    expect((await find(['a.txt', '--source', 'other'])).map((x) => x[0])).toEqual([ids.o1]);
    expect(await find(['a.txt', '--host', 'no-such-host'])).toEqual([]);
    expect((await find(['a.txt', '--host', os.hostname(), '--source', 'proj'])).map((x) => x[0])).toEqual([ids.p2, ids.p1]);
    expect((await find(['a.txt', '--path', other])).map((x) => x[0])).toEqual([ids.o1]);
    // restic's --path: the paths the snapshot backed up, not what lies below them
    expect(await find(['a.txt', '--path', path.join(proj, 'sub')])).toEqual([]);
    expect((await find(['a.txt', '--tag', 'first'])).map((x) => x[0])).toEqual([ids.p1]);
    const text = await run(['find', 'notes.md', '--long', '--source', 'proj']);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toContain(`Found matching entries in snapshot ${ids.p2.slice(0, 8)}`);
    expect(text.stdout).toMatch(new RegExp(`^file +0644 .* ${path.join(proj, 'sub', 'notes.md')}$`, 'm'));
    expect((await run(['find'])).code).toBe(2);
  });
});

describe('keep cat on an embedded repository', () => {
  const tmp = tempDirs();
  let env: Record<string, string>;
  let src: string;
  let snap: any;
  const run: Run = (args) => keep(args, { env });
  const json = async (args: string[]) => {
    const r = await run(args);
    expect(r.code, r.stderr).toBe(0);
    return JSON.parse(r.stdout);
  };

  beforeAll(async () => {
    const dir = tmp.make('keep-cat-');
    ({ env } = await initRepo(dir));
    src = path.join(dir, 'src');
    fs.mkdirSync(path.join(src, 'sub'), { recursive: true });
    fs.writeFileSync(path.join(src, 'sub', 'data.bin'), prng(3, 40_000));
    fs.symlinkSync('sub/data.bin', path.join(src, 'link'));
    const r = await run(['backup', src, '--source', 'cat', '--tag', 'dbg', '--json']);
    expect(r.code, r.stderr).toBe(0);
    snap = JSON.parse(r.stdout);
  });

  it('config, snapshot and key parse as JSON', async () => {
    const config = await json(['cat', 'config']);
    expect(config.format).toBe('keep-repository');
    expect(config.id).toMatch(/^[0-9a-f]{32}$/);
    const s = await json(['cat', 'snapshot', snap.snapshot.slice(0, 8)]);
    expect(s.id).toBe(snap.snapshot);
    expect(s.source).toBe('cat');
    expect(s.tags).toEqual(['dbg']);
    expect(s.root).toMatch(/^[0-9a-f]{64}$/);
    expect(s.mac).toMatch(/^[0-9a-f]{64}$/);
    // the sealed part, opened by the agent
    expect(s.paths).toEqual([src]);
    expect(typeof s.username).toBe('string');
    expect((await json(['cat', 'snapshot', 'latest'])).id).toBe(snap.snapshot);
    const keys = await json(['key', 'list', '--json']);
    const key = await json(['cat', 'key', keys[0].id]);
    expect(key.id).toBe(keys[0].id);
    expect(key.kdf.name).toBe('scrypt');
  });

  it('tree by SNAPSHOT:PATH and by id, and a data blob as its plaintext', async () => {
    const s = await json(['cat', 'snapshot', 'latest']);
    const dirTree = await json(['cat', 'tree', `latest:${src}`]);
    expect(dirTree.entries.map((e: any) => [e.name, e.type])).toEqual([['link', 'symlink'], ['sub', 'dir']]);
    expect(dirTree.entries[0].target).toBe('sub/data.bin');
    const sub = await json(['cat', 'tree', dirTree.entries[1].subtree]);
    expect(sub.id).toBe(dirTree.entries[1].subtree);
    const file = sub.entries[0];
    expect([file.name, file.type, file.size]).toEqual(['data.bin', 'file', 40_000]);
    expect(file.content).toHaveLength(1);
    const blob = await run(['cat', 'blob', file.content[0]]);
    expect(blob.code, blob.stderr).toBe(0);
    expect(blob.stdoutBytes.equals(prng(3, 40_000))).toBe(true);
    // a tree blob comes out as the tree's JSON; the root is the snapshot's
    expect((await json(['cat', 'blob', s.root])).id).toBe(s.root);
    expect((await json(['cat', 'tree', 'latest'])).id).toBe(s.root);
  });

  it('refuses the master key and what it does not know', async () => {
    const master = await run(['cat', 'masterkey']);
    expect(master.code).toBe(2);
    expect(master.stdout).toBe('');
    expect(master.stderr).toMatch(/does not print the master key/);
    expect((await run(['cat', 'index', 'x'])).code).toBe(2);
    expect((await run(['cat', 'tree', `latest:${src}/link`])).code).toBe(2);
    expect((await run(['cat', 'blob', 'f'.repeat(64)])).code).not.toBe(0);
  });
});

describe('find, dump and cat through keepd (grpc://)', () => {
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

  it('find lists the snapshot and paths', async () => {
    const r = await run(['find', '*.md', 'README', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const found = JSON.parse(r.stdout);
    expect(found).toHaveLength(1);
    expect(found[0].matches.map((m: any) => [m.path, m.type])).toEqual([
      [path.join(src, 'docs', 'README'), 'symlink'],
      [path.join(src, 'docs', 'readme.md'), 'file'],
    ]);
  });

  it('cat decrypts in the agent: snapshot, tree and a data blob', async () => {
    const snap = JSON.parse((await run(['cat', 'snapshot', 'latest'])).stdout);
    expect(snap.source).toBe('files');
    const docs = JSON.parse((await run(['cat', 'tree', `latest:${src}/docs`])).stdout);
    expect(docs.entries.map((e: any) => e.name)).toEqual(['README', 'readme.md']);
    const blob = await run(['cat', 'blob', docs.entries[1].content[0]]);
    expect(blob.code, blob.stderr).toBe(0);
    expect(blob.stdout).toBe('# keep\n');
  });

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
