/**
 * The user-facing commands on an embedded repository, through the real
 * `keep` binary: snapshot listing, point-in-time and partial restore, ls,
 * diff, stats, stdin backups, special files, and the --json contract.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compareTrees, compressible, errorLine, initRepo, keep, keepJson, MiB, parseOneJson, prng, restoredPath, sha256, summarize, summaryLine, tempDirs } from './helpers.js';

const SNAPSHOT_KEYS = ['id', 'source', 'host', 'time', 'parent', 'tags', 'size'];

describe('history of a source: snapshots, restore --at / --include, ls, diff', () => {
  const tmp = tempDirs();
  let env: Record<string, string>;
  let base: string;
  let src: string;
  let other: string;
  /** cp -a copies of src as each snapshot saw it */
  const state: string[] = [];
  const b: any[] = [];
  let o1: any;

  const backup = async (args: string[]) => {
    const r = await keep(['backup', ...args, '--json'], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    return parseOneJson(r);
  };
  const snapshotState = (i: number) => {
    state[i] = path.join(base, `state${i}`);
    execFileSync('cp', ['-a', src, state[i]]);
  };

  beforeAll(async () => {
    base = tmp.make();
    ({ env } = await initRepo(base));
    src = path.join(base, 'proj');
    other = path.join(base, 'other');
    fs.mkdirSync(path.join(src, 'sub'), { recursive: true });
    fs.writeFileSync(path.join(src, 'a.txt'), 'version 1\n');
    fs.writeFileSync(path.join(src, 'b.txt'), 'to be removed\n');
    fs.writeFileSync(path.join(src, 'sub', 'c.txt'), 'stays\n');
    fs.symlinkSync('a.txt', path.join(src, 'link'));
    fs.mkdirSync(other);
    fs.writeFileSync(path.join(other, 'x'), 'another source\n');

    snapshotState(0);
    b[0] = await backup([src, '--source', 'proj', '--tag', 'daily', '--tag', 'v1']);

    fs.writeFileSync(path.join(src, 'a.txt'), 'version two, longer\n');
    fs.rmSync(path.join(src, 'b.txt'));
    fs.writeFileSync(path.join(src, 'd.txt'), 'added\n');
    snapshotState(1);
    b[1] = await backup([src, '--source', 'proj', '--tag', 'daily']);

    // Another source's snapshot between the second and third of this one.
    o1 = await backup([other, '--source', 'other']);

    fs.writeFileSync(path.join(src, 'sub', 'e.txt'), 'new in sub\n');
    fs.chmodSync(path.join(src, 'sub', 'c.txt'), 0o600);
    snapshotState(2);
    b[2] = await backup([src, '--source', 'proj']);
  });

  it('snapshots --json: shape, oldest first, parents, tags, sizes', async () => {
    const list = await keepJson(['snapshots'], { env });
    expect(Array.isArray(list)).toBe(true);
    expect(list.map((s: any) => s.id)).toEqual([b[0].snapshot, b[1].snapshot, o1.snapshot, b[2].snapshot]);
    for (const s of list) {
      for (const k of SNAPSHOT_KEYS) expect(s, `snapshot lacks ${k}`).toHaveProperty(k);
      expect(s.id).toMatch(/^[0-9a-f]{32}$/);
      expect(s.host).toBe(os.hostname());
      expect(new Date(s.time).toISOString()).toBe(s.time);
      expect(Array.isArray(s.tags)).toBe(true);
    }
    const times = list.map((s: any) => Date.parse(s.time));
    expect([...times].sort((x, y) => x - y)).toEqual(times);
    expect(new Set(times).size).toBe(times.length);
    const [s0, s1, so, s2] = list;
    expect(s0.time).toBe(b[0].time);
    expect([s0.source, s1.source, so.source, s2.source]).toEqual(['proj', 'proj', 'other', 'proj']);
    expect(s0.parent).toBeNull();
    expect(s1.parent).toBe(s0.id);
    expect(s2.parent).toBe(s1.id); // the source's previous snapshot, not the other source's
    expect(so.parent).toBeNull();
    expect(s0.tags).toEqual(['daily', 'v1']);
    expect(s1.tags).toEqual(['daily']);
    expect(s2.tags).toEqual([]);
    expect(s0.size).toBe(summarize(state[0]).bytes);
    expect(s1.size).toBe(summarize(state[1]).bytes);
    expect(s2.size).toBe(summarize(state[2]).bytes);
  });

  it('snapshots --source filters', async () => {
    const proj = await keepJson(['snapshots', '--source', 'proj'], { env });
    expect(proj.map((s: any) => s.id)).toEqual(b.map((x) => x.snapshot));
    const oth = await keepJson(['snapshots', '--source', 'other'], { env });
    expect(oth.map((s: any) => s.id)).toEqual([o1.snapshot]);
    expect(await keepJson(['snapshots', '--source', 'nobody'], { env })).toEqual([]);
  });

  it('restore --at picks the newest snapshot of the source at or before the time', async () => {
    const at = async (time: string, expectState: number) => {
      const t = tmp.make('keep-at-');
      const r = await keep(['restore', 'latest', '--source', 'proj', '--at', time, '--target', t, '--json'], { env });
      expect(r.code, r.stderr).toBe(0);
      const out = parseOneJson(r);
      expect(out.snapshot, `--at ${time}`).toBe(b[expectState].snapshot);
      expect(compareTrees(state[expectState], restoredPath(t, src), { rootMeta: true }), `--at ${time}`).toEqual([]);
    };
    const t0 = Date.parse(b[0].time);
    const t1 = Date.parse(b[1].time);
    await at(b[1].time, 1); // exactly at a snapshot's time: that snapshot
    await at(new Date(t1 - 1).toISOString(), 0); // a millisecond before it: the previous one
    await at(new Date((t0 + t1) / 2).toISOString(), 0);
    await at(o1.time, 1); // another source's newer snapshot does not count
    await at(new Date(Date.now() + 3_600_000).toISOString(), 2);
    // RFC 3339 with an offset names the same instant.
    const off = new Date(t1 + 3_600_000).toISOString().replace('Z', '+01:00');
    await at(off, 1);

    const t = tmp.make('keep-at-');
    const r = await keep(['restore', 'latest', '--source', 'proj', '--at', new Date(t0 - 1000).toISOString(), '--target', t], { env });
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^keep: error: .*no snapshot/);
    expect(fs.readdirSync(t)).toEqual([]);
  });

  it('restore --include restores only the named paths', async () => {
    const t = tmp.make('keep-inc-');
    const sub = path.join(src, 'sub');
    const r = await keep(['restore', b[2].snapshot, '--target', t, '--include', sub, '--json'], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(compareTrees(path.join(state[2], 'sub'), restoredPath(t, sub), { rootMeta: true })).toEqual([]);
    expect(fs.readdirSync(restoredPath(t, src))).toEqual(['sub']);

    // Several includes, a file and a symlink; a trailing slash is fine.
    const t2 = tmp.make('keep-inc-');
    const r2 = await keep(['restore', b[0].snapshot, '--target', t2, '--include', path.join(src, 'b.txt'), '--include', path.join(src, 'link') + '/'], { env });
    expect(r2.code, r2.stderr).toBe(0);
    expect(fs.readdirSync(restoredPath(t2, src)).sort()).toEqual(['b.txt', 'link']);
    expect(fs.readFileSync(restoredPath(t2, path.join(src, 'b.txt')), 'utf8')).toBe('to be removed\n');
    expect(fs.readlinkSync(restoredPath(t2, path.join(src, 'link')))).toBe('a.txt');
  });

  it('ls SNAPSHOT --json lists every entry with its metadata; PATH narrows it', async () => {
    const rows = await keepJson(['ls', b[0].snapshot], { env });
    expect(Array.isArray(rows)).toBe(true);
    const by = new Map(rows.map((r: any) => [r.path, r]));
    // The absolute path is kept: every ancestor of src is listed as a directory.
    for (let p = src; p !== '/'; p = path.dirname(p)) expect((by.get(p) as any)?.type, p).toBe('dir');
    const under = rows.filter((r: any) => r.path.startsWith(src + '/')).map((r: any) => r.path).sort();
    expect(under).toEqual(['a.txt', 'b.txt', 'link', 'sub', 'sub/c.txt'].map((n) => `${src}/${n}`));
    const st = fs.lstatSync(path.join(state[0], 'b.txt'));
    expect(by.get(`${src}/b.txt`)).toMatchObject({
      type: 'file',
      size: st.size,
      mode: (st.mode & 0o7777).toString(8).padStart(4, '0'),
      uid: st.uid,
      gid: st.gid,
      mtime: new Date(Math.floor(st.mtimeMs)).toISOString(),
    });
    expect(by.get(`${src}/link`)).toMatchObject({ type: 'symlink', target: 'a.txt' });

    const narrowed = await keepJson(['ls', b[2].snapshot, path.join(src, 'sub')], { env });
    expect(narrowed.map((r: any) => r.path).sort()).toEqual([`${src}/sub`, `${src}/sub/c.txt`, `${src}/sub/e.txt`]);
    expect(narrowed.find((r: any) => r.path.endsWith('c.txt')).mode).toBe('0600');
  });

  it('diff A B --json names added, removed and modified paths', async () => {
    const d1 = await keepJson(['diff', b[0].snapshot, b[1].snapshot], { env });
    const pick = (d: any) => d.changes.map((c: any) => `${c.change} ${c.path}`).sort();
    expect(pick(d1)).toEqual([`added ${src}/d.txt`, `modified ${src}/a.txt`, `removed ${src}/b.txt`]);
    expect(d1.summary).toMatchObject({ added: 1, removed: 1, modified: 1 });

    const d2 = await keepJson(['diff', b[1].snapshot, b[2].snapshot], { env });
    expect(pick(d2)).toEqual([`added ${src}/sub/e.txt`, `metadata ${src}/sub/c.txt`]);

    // Reversed, an addition is a removal.
    const d3 = await keepJson(['diff', b[1].snapshot, b[0].snapshot], { env });
    expect(pick(d3)).toEqual([`added ${src}/b.txt`, `modified ${src}/a.txt`, `removed ${src}/d.txt`]);

    const same = await keepJson(['diff', b[2].snapshot, b[2].snapshot], { env });
    expect(same.changes).toEqual([]);
  });

  it('stats --json agrees with the snapshots', async () => {
    const st = await keepJson(['stats'], { env });
    expect(st.snapshots).toBe(4);
    expect(st.sources).toBe(2);
    const sizes = [state[0], state[1], other, state[2]].map((d) => summarize(d).bytes);
    expect(st.total_file_size).toBe(sizes.reduce((x, y) => x + y, 0));
    expect(st.latest_size).toBe(sizes[2] + sizes[3]);
    expect(st.stored_bytes).toBeGreaterThan(0);
    expect(st.blobs).toBeGreaterThan(0);
    expect(st.packs).toBeGreaterThan(0);
    const proj = await keepJson(['stats', '--source', 'proj'], { env });
    expect(proj.snapshots).toBe(3);
  });

  it('--json prints exactly one JSON document on stdout (backup and restore: JSON lines ending in the summary), and nothing on stderr, for every command', async () => {
    const t = tmp.make('keep-json-');
    const commands = [
      ['snapshots'],
      ['snapshots', '--source', 'proj'],
      ['ls', b[2].snapshot],
      ['ls', 'latest', '--source', 'proj', path.join(src, 'sub')],
      ['diff', b[0].snapshot, b[2].snapshot],
      ['stats'],
      ['check'],
      ['check', '--read-data'],
      ['check', '--read-data-subset', '50%'],
      ['key', 'list'],
      ['restore', 'latest', '--source', 'proj', '--target', t],
      ['backup', src, '--source', 'proj'],
    ];
    for (const args of commands) {
      const r = await keep([...args, '--json'], { env });
      expect(r.code, `keep ${args.join(' ')}: ${r.stderr}`).toBe(0);
      expect(r.stderr, `keep ${args.join(' ')}`).toBe('');
      const doc = args[0] === 'backup' || args[0] === 'restore' ? summaryLine(r) : parseOneJson(r);
      expect(typeof doc, `keep ${args.join(' ')}`).toBe('object');
      if (args[0] === 'check') expect(doc.ok).toBe(true);
    }
  });
});

describe('backup PATH...', () => {
  const tmp = tempDirs();
  let base: string;
  let env: Record<string, string>;

  beforeAll(async () => {
    base = tmp.make();
    ({ env } = await initRepo(base));
    for (const d of ['one', 'two', 'three']) {
      fs.mkdirSync(path.join(base, d));
      fs.writeFileSync(path.join(base, d, 'file'), `in ${d}\n`);
    }
  });

  it('several paths, relative ones resolved against the working directory, are stored under their absolute paths', async () => {
    const r = await keep(['backup', 'one', path.join(base, 'two'), '--source', 'multi', '--json'], { env, cwd: base });
    expect(r.code, r.stderr).toBe(0);
    const out = parseOneJson(r);
    expect(out.files_new).toBe(2);
    const rows = await keepJson(['ls', out.snapshot], { env });
    const files = rows.filter((x: any) => x.type === 'file').map((x: any) => x.path).sort();
    expect(files).toEqual([path.join(base, 'one', 'file'), path.join(base, 'two', 'file')]);
    const t = tmp.make('keep-multi-');
    expect((await keep(['restore', out.snapshot, '--target', t], { env })).code).toBe(0);
    expect(fs.readdirSync(restoredPath(t, base)).sort()).toEqual(['one', 'two']);
    expect(fs.readFileSync(restoredPath(t, path.join(base, 'one', 'file')), 'utf8')).toBe('in one\n');
  });

  it('a path that does not exist is an error and makes no snapshot', async () => {
    const before = await keepJson(['snapshots'], { env });
    for (const missing of [path.join(base, 'no-such-dir'), path.join(base, 'no-such-parent', 'child')]) {
      const r = await keep(['backup', path.join(base, 'three'), missing, '--source', 'typo', '--json'], { env });
      expect(errorLine(r)).toContain(missing.startsWith(path.join(base, 'no-such-parent')) ? path.join(base, 'no-such-parent') : missing);
      expect(r.stdout).toBe('');
    }
    expect(await keepJson(['snapshots'], { env })).toEqual(before);
  });
});

describe('backup --stdin', () => {
  const tmp = tempDirs();

  it('stores a stream under --stdin-name and restores the same bytes; a rerun stores nothing new', async () => {
    const base = tmp.make();
    const { env } = await initRepo(base);
    const input = Buffer.concat([compressible(2 * MiB), prng(42, 3 * MiB + 17)]);
    const r = await keep(['backup', '--stdin', '--stdin-name', 'dump.sql', '--json'], { env, input });
    expect(r.code, r.stderr).toBe(0);
    const first = parseOneJson(r);
    expect(first.source).toBe('dump.sql');
    expect(first.files_new).toBe(1);
    expect(first.bytes_read).toBe(input.length);

    const rows = await keepJson(['ls', 'latest', '--source', 'dump.sql'], { env });
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ path: '/dump.sql', type: 'file', size: input.length });

    const t = tmp.make('keep-stdin-');
    const rr = await keep(['restore', 'latest', '--source', 'dump.sql', '--target', t, '--json'], { env });
    expect(rr.code, rr.stderr).toBe(0);
    expect(fs.readdirSync(t)).toEqual(['dump.sql']);
    expect(sha256(fs.readFileSync(path.join(t, 'dump.sql')))).toBe(sha256(input));

    const again = await keepJson(['backup', '--stdin', '--stdin-name', 'dump.sql'], { env, input });
    expect(again.snapshot).not.toBe(first.snapshot);
    expect(again.chunks_new).toBe(0);
    expect(again.bytes_sent).toBeLessThan(input.length / 100);
    const snaps = await keepJson(['snapshots', '--source', 'dump.sql'], { env });
    expect(snaps.map((s: any) => s.id)).toEqual([first.snapshot, again.snapshot]);
    expect(snaps[1].parent).toBe(first.snapshot);
  });

  it('an empty stream is an empty file', async () => {
    const base = tmp.make();
    const { env } = await initRepo(base);
    const b = await keepJson(['backup', '--stdin', '--stdin-name', 'empty.dump'], { env, input: Buffer.alloc(0) });
    expect(b.bytes_read).toBe(0);
    const t = tmp.make('keep-stdin-');
    const rr = await keep(['restore', b.snapshot, '--target', t], { env });
    expect(rr.code, rr.stderr).toBe(0);
    expect(fs.readFileSync(path.join(t, 'empty.dump'))).toEqual(Buffer.alloc(0));
  });
});

describe('special files', () => {
  const tmp = tempDirs();
  let server: net.Server | undefined;
  afterAll(() => server?.close());

  it('a FIFO and a socket are skipped with a warning; the backup succeeds', async () => {
    const base = tmp.make();
    const { env } = await initRepo(base);
    const src = path.join(base, 'special');
    fs.mkdirSync(src);
    fs.writeFileSync(path.join(src, 'regular.txt'), 'regular\n');
    const fifo = path.join(src, 'pipe');
    execFileSync('mkfifo', [fifo]);
    const sock = path.join(src, 'sock');
    server = net.createServer();
    await new Promise<void>((resolve) => server!.listen(sock, resolve));
    expect(fs.lstatSync(fifo).isFIFO()).toBe(true);
    expect(fs.lstatSync(sock).isSocket()).toBe(true);

    // A reader that opened the FIFO would block forever: the timeout turns that into a failure.
    const r = await keep(['backup', src, '--json'], { env, timeoutMs: 30_000 });
    expect(r.code, r.stderr).toBe(0);
    const out = summaryLine(r);
    expect(out.files_new).toBe(1);
    // under --json each warning is restic's "error" message on stderr, naming its item
    const warnings = r.stderr.split('\n').filter(Boolean).map((l) => JSON.parse(l));
    expect(warnings.every((w) => w.message_type === 'error' && w.during === 'archival'), r.stderr).toBe(true);
    expect(warnings.map((w) => w.item).sort()).toEqual([fifo, sock]);

    const rows = await keepJson(['ls', out.snapshot], { env });
    expect(rows.filter((x: any) => x.path.startsWith(src + '/')).map((x: any) => x.path)).toEqual([`${src}/regular.txt`]);

    const t = tmp.make('keep-special-');
    const rr = await keep(['restore', out.snapshot, '--target', t], { env });
    expect(rr.code, rr.stderr).toBe(0);
    expect(fs.readdirSync(restoredPath(t, src))).toEqual(['regular.txt']);
    expect(fs.readFileSync(restoredPath(t, path.join(src, 'regular.txt')), 'utf8')).toBe('regular\n');
  });
});
