/**
 * `keep restore` into a target that already holds files, with restic's
 * options: --overwrite always|if-changed|if-newer|never, --delete, --dry-run
 * and --verify. Each case restores a real snapshot over a prepared target (an
 * identical file, a large identical one, a changed one, a changed one of the
 * same size and mtime, a newer one, an older one, a missing one, extra
 * entries) and checks what `-v --json` reported (restic's verbose_status
 * actions), the summary's counts, and the bytes on disk. One case runs over
 * gRPC through a real keepd.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initRepo, MiB, prng, restoredPath, summaryLine, tempDirs } from './helpers.js';
import { agentEnv, createToken, keepdInit, keepJson, killAllKeepd, runKeep, startKeepd } from './keepd-harness.js';

/** The snapshot's files: name -> content. All get SNAP_TIME as mtime. */
const FILES: Record<string, Buffer> = {
  'same.txt': Buffer.from('identical in the target\n'),
  'big.bin': prng(7, 3 * MiB + 123),
  'changed.txt': Buffer.from('the snapshot says this\n'),
  'samesize.txt': Buffer.from('snapshot bytes\n'),
  'newer.txt': Buffer.from('snapshot version of newer\n'),
  'older.txt': Buffer.from('snapshot version of older\n'),
  'sub/missing.txt': Buffer.from('gone from the target\n'),
};
const SNAP_TIME = new Date('2024-03-01T12:00:00Z');

type Env = Record<string, string | undefined>;
type Actions = Record<string, string>;

/** JSON lines of `restore -v --json`: each item's action by its name below the source, and the summary. */
function parseLines(stdout: string, src: string): { actions: Actions; summary: any } {
  const lines = stdout.trim().split('\n').map((l) => JSON.parse(l));
  const actions: Actions = {};
  for (const l of lines.filter((l) => l.message_type === 'verbose_status')) actions[path.relative(src, l.item)] = l.action;
  const summary = lines[lines.length - 1];
  expect(summary.message_type).toBe('summary');
  return { actions, summary };
}

describe('keep restore --overwrite / --delete / --dry-run / --verify', () => {
  const tmp = tempDirs();
  let src: string;
  let env: Env;
  let snapshot: string;
  const file = (t: string, name: string) => restoredPath(t, path.join(src, name));
  const read = (t: string, name: string) => fs.readFileSync(file(t, name));

  beforeAll(async () => {
    const base = tmp.make('keep-restore-opts-');
    ({ env } = await initRepo(base));
    src = path.join(base, 'src');
    for (const [name, content] of Object.entries(FILES)) {
      fs.mkdirSync(path.dirname(path.join(src, name)), { recursive: true });
      fs.writeFileSync(path.join(src, name), content);
      fs.utimesSync(path.join(src, name), SNAP_TIME, SNAP_TIME);
    }
    fs.symlinkSync('same.txt', path.join(src, 'link'));
    snapshot = (await keepJson(['backup', src], env)).snapshot;
  });

  /**
   * A target restored from the snapshot, then changed: changed.txt (other
   * bytes, other size), samesize.txt (other bytes, same size and mtime: only
   * reading tells), newer.txt (other bytes, mtime now), older.txt (other
   * bytes, mtime in 2001), sub/missing.txt removed, extra.txt and
   * sub/extra-dir/x added.
   */
  async function prepared(e: Env = env): Promise<string> {
    const t = tmp.make('keep-restore-opts-t-');
    const r = await runKeep(['restore', snapshot, '--target', t], e);
    expect(r.code, r.stderr).toBe(0);
    fs.writeFileSync(file(t, 'changed.txt'), 'the target changed this, and its size\n');
    fs.utimesSync(file(t, 'changed.txt'), SNAP_TIME, SNAP_TIME);
    fs.writeFileSync(file(t, 'samesize.txt'), 'target bytes!!\n');
    fs.utimesSync(file(t, 'samesize.txt'), SNAP_TIME, SNAP_TIME);
    fs.writeFileSync(file(t, 'newer.txt'), 'edited in the target today\n');
    fs.writeFileSync(file(t, 'older.txt'), 'an old copy in the target\n');
    fs.utimesSync(file(t, 'older.txt'), new Date('2001-01-01'), new Date('2001-01-01'));
    fs.unlinkSync(file(t, 'sub/missing.txt'));
    fs.writeFileSync(file(t, 'extra.txt'), 'not in the snapshot\n');
    fs.mkdirSync(file(t, 'sub/extra-dir'));
    fs.writeFileSync(file(t, 'sub/extra-dir/x'), 'x\n');
    return t;
  }

  const restore = async (t: string, args: string[], e: Env = env) => {
    const r = await runKeep(['restore', snapshot, '--target', t, '-v', '--json', ...args], e);
    expect(r.code, r.stderr).toBe(0);
    return parseLines(r.stdout, src);
  };

  /** The files of the target below the source's place: name -> content (and symlinks as "-> target"). */
  function contents(t: string): Record<string, string> {
    const out: Record<string, string> = {};
    const walk = (dir: string, rel: string) => {
      for (const d of fs.readdirSync(dir, { withFileTypes: true })) {
        const r = rel ? `${rel}/${d.name}` : d.name;
        const p = path.join(dir, d.name);
        if (d.isDirectory()) walk(p, r);
        else if (d.isSymbolicLink()) out[r] = `-> ${fs.readlinkSync(p)}`;
        else out[r] = fs.readFileSync(p).toString('latin1');
      }
    };
    walk(restoredPath(t, src), '');
    return out;
  }
  const snapshotContents = () => ({ ...Object.fromEntries(Object.entries(FILES).map(([k, v]) => [k, v.toString('latin1')])), link: '-> same.txt' });

  it('--overwrite always (the default) rewrites what differs, reads what may be equal, and keeps extra entries', async () => {
    const t = await prepared();
    const { actions, summary } = await restore(t, []);
    expect(actions).toEqual({
      'same.txt': 'unchanged',
      'big.bin': 'unchanged',
      'changed.txt': 'updated',
      'samesize.txt': 'updated',
      'newer.txt': 'updated',
      'older.txt': 'updated',
      'sub/missing.txt': 'restored',
      link: 'restored',
    });
    expect(summary).toMatchObject({ total_files: 7, files_restored: 5, files_skipped: 2, files_deleted: 0, dry_run: false });
    expect(summary.bytes_skipped).toBe(FILES['same.txt'].length + FILES['big.bin'].length);
    expect(summary.bytes_restored + summary.bytes_skipped).toBe(summary.total_bytes);
    // The unchanged big file was read, not fetched: only the five small files' content was written.
    expect(summary.bytes).toBe(summary.bytes_restored);
    expect(contents(t)).toEqual({ ...snapshotContents(), 'extra.txt': 'not in the snapshot\n', 'sub/extra-dir/x': 'x\n' });
    // Metadata is the snapshot's on every file, the unchanged ones too.
    for (const name of Object.keys(FILES)) expect(fs.statSync(file(t, name)).mtime.getTime(), name).toBe(SNAP_TIME.getTime());
  });

  it.runIf(process.getuid?.() === 0)('as root, a matching file someone else owns is rewritten, not chowned in place (they may hold it open)', async () => {
    const t = await prepared();
    fs.chownSync(file(t, 'same.txt'), 65534, 65534);
    const { actions } = await restore(t, ['--overwrite', 'if-changed']);
    expect(actions['same.txt']).toBe('updated');
    expect(actions['big.bin']).toBe('unchanged');
    const st = fs.statSync(file(t, 'same.txt'));
    const want = fs.statSync(path.join(src, 'same.txt'));
    expect([st.uid, st.gid]).toEqual([want.uid, want.gid]);
  });

  it('--overwrite if-changed trusts size and mtime: the same-size, same-mtime change is left (and --verify then catches it, exit 4)', async () => {
    const t = await prepared();
    const { actions, summary } = await restore(t, ['--overwrite', 'if-changed']);
    expect(actions).toEqual({
      'same.txt': 'unchanged',
      'big.bin': 'unchanged',
      'changed.txt': 'updated',
      'samesize.txt': 'unchanged',
      'newer.txt': 'updated',
      'older.txt': 'updated',
      'sub/missing.txt': 'restored',
      link: 'restored',
    });
    expect(summary).toMatchObject({ files_restored: 4, files_skipped: 3 });
    expect(read(t, 'samesize.txt').toString()).toBe('target bytes!!\n');

    // --verify reads what the target holds, whatever the restore decided: the file if-changed trusted differs.
    const v = await runKeep(['restore', snapshot, '--target', t, '--overwrite', 'if-changed', '--verify', '--json'], env);
    expect(v.code).toBe(4);
    const doc = summaryLine(v);
    expect(doc.files_verified).toBe(7);
    expect(doc.verify_failures).toEqual([`${path.join(src, 'samesize.txt')}: content differs from the snapshot`]);
    // under --json, stderr is restic's messages: the warning an "error" line, the failure the "exit_error" line
    const messages = v.stderr.split('\n').filter(Boolean).map((l) => JSON.parse(l));
    expect(messages.find((m) => m.message_type === 'error').error.message).toMatch(/^verify: .*samesize\.txt: content differs from the snapshot/);
    expect(messages.at(-1)).toMatchObject({ message_type: 'exit_error', code: 4, message: expect.stringMatching(/^--verify: 1 file\(s\) in the target differ from the snapshot/) });

    // always reads it, rewrites it, and the same --verify passes.
    const fixed = await runKeep(['restore', snapshot, '--target', t, '--verify', '--json'], env);
    expect(fixed.code, fixed.stderr).toBe(0);
    expect(summaryLine(fixed)).toMatchObject({ files_restored: 1, files_verified: 7, verify_failures: [] });
    expect(read(t, 'samesize.txt')).toEqual(FILES['samesize.txt']);
  });

  it('--overwrite if-newer replaces only files older than the snapshot; never replaces nothing', async () => {
    const t = await prepared();
    const newer = await restore(t, ['--overwrite', 'if-newer']);
    expect(newer.actions).toEqual({
      'same.txt': 'skipped',
      'big.bin': 'skipped',
      'changed.txt': 'skipped',
      'samesize.txt': 'skipped',
      'newer.txt': 'skipped',
      'older.txt': 'updated',
      'sub/missing.txt': 'restored',
      link: 'skipped',
    });
    expect(newer.summary).toMatchObject({ files_restored: 2, files_skipped: 5 });
    expect(read(t, 'older.txt')).toEqual(FILES['older.txt']);
    expect(read(t, 'newer.txt').toString()).toBe('edited in the target today\n');

    const t2 = await prepared();
    const never = await restore(t2, ['--overwrite', 'never']);
    expect(never.summary).toMatchObject({ files_restored: 1, files_skipped: 6, total_files: 7 });
    expect(never.actions['sub/missing.txt']).toBe('restored');
    expect(read(t2, 'changed.txt').toString()).toBe('the target changed this, and its size\n');
    expect(read(t2, 'older.txt').toString()).toBe('an old copy in the target\n');
    // --verify over never: what never kept is not the snapshot's, and the exit code says so.
    const v = await runKeep(['restore', snapshot, '--target', t2, '--overwrite', 'never', '--verify'], env);
    expect(v.code).toBe(4);
    expect(v.stderr.match(/keep: warning: verify: /g)).toHaveLength(4);
  });

  it('--dry-run writes nothing and lists exactly what the restore then does; --delete removes what the snapshot lacks', async () => {
    const t = await prepared();
    const before = contents(t);
    const mtimes = Object.keys(before).map((n) => fs.lstatSync(file(t, n)).mtimeMs);
    const dry = await restore(t, ['--dry-run', '--delete']);
    expect(contents(t)).toEqual(before);
    expect(Object.keys(before).map((n) => fs.lstatSync(file(t, n)).mtimeMs)).toEqual(mtimes);
    expect(dry.summary).toMatchObject({ dry_run: true, files: 0, bytes: 0, files_restored: 5, files_skipped: 2, files_deleted: 3 });

    const real = await restore(t, ['--delete']);
    expect(real.actions).toEqual(dry.actions);
    expect(dry.actions).toMatchObject({ 'extra.txt': 'deleted', 'sub/extra-dir': 'deleted', 'sub/extra-dir/x': 'deleted', 'samesize.txt': 'updated', 'same.txt': 'unchanged' });
    expect(real.summary).toMatchObject({ dry_run: false, files_restored: 5, files_skipped: 2, files_deleted: 3 });
    expect(contents(t)).toEqual(snapshotContents());

    // A dry run into a target that does not exist: everything would be restored, and nothing is made.
    const none = path.join(tmp.make('keep-restore-opts-t-'), 'absent');
    const fresh = await restore(none, ['--dry-run']);
    expect(fresh.summary).toMatchObject({ files_restored: 7, files_skipped: 0 });
    expect(fs.existsSync(none)).toBe(false);
  });

  it('--delete stays inside --include and never follows a symlink out of the target; a directory where a file belongs needs --delete', async () => {
    const t = await prepared();
    const outside = tmp.make('keep-restore-opts-outside-');
    fs.writeFileSync(path.join(outside, 'precious'), 'keep me\n');
    fs.symlinkSync(outside, file(t, 'sub/link-out'));
    const { actions } = await restore(t, ['--delete', '--include', 'sub']);
    expect(actions).toEqual({ 'sub/extra-dir': 'deleted', 'sub/extra-dir/x': 'deleted', 'sub/link-out': 'deleted', 'sub/missing.txt': 'restored' });
    expect(fs.readFileSync(path.join(outside, 'precious'), 'utf8')).toBe('keep me\n');
    expect(fs.existsSync(file(t, 'extra.txt'))).toBe(true);

    // A non-empty directory where the snapshot has a file: an error naming it, unless --delete.
    fs.unlinkSync(file(t, 'changed.txt'));
    fs.mkdirSync(file(t, 'changed.txt'));
    fs.writeFileSync(file(t, 'changed.txt/inner'), 'i\n');
    const refused = await runKeep(['restore', snapshot, '--target', t], env);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/changed\.txt: a directory stands where the snapshot has a file or symlink; --delete replaces it/);
    const replaced = await restore(t, ['--delete']);
    expect(replaced.actions).toMatchObject({ 'changed.txt/inner': 'deleted', 'changed.txt': 'updated' });
    expect(contents(t)).toEqual(snapshotContents());
  });

  it('hardlinks restored over an earlier restore stay one inode; the dry run predicts what the run does', async () => {
    const hsrc = path.join(tmp.make('keep-restore-opts-h-'), 'h');
    fs.mkdirSync(hsrc);
    fs.writeFileSync(path.join(hsrc, 'a'), 'linked content\n');
    fs.linkSync(path.join(hsrc, 'a'), path.join(hsrc, 'b'));
    const snap = (await keepJson(['backup', hsrc], env)).snapshot;
    const t = tmp.make('keep-restore-opts-t-');
    const run = async (args: string[]) => {
      const r = await runKeep(['restore', snap, '--target', t, '-v', '--json', ...args], env);
      expect(r.code, r.stderr).toBe(0);
      return parseLines(r.stdout, hsrc);
    };
    expect((await run([])).actions).toEqual({ a: 'restored', b: 'restored' });
    const ino = (n: string) => fs.statSync(restoredPath(t, path.join(hsrc, n))).ino;
    expect(ino('a')).toBe(ino('b'));
    // A file with two names is rewritten rather than touched in place (one name could lie outside the target).
    const dry = await run(['--dry-run']);
    const again = await run([]);
    expect(again.actions).toEqual(dry.actions);
    expect(again.actions).toEqual({ a: 'updated', b: 'updated' });
    expect(ino('a')).toBe(ino('b'));
    const never = await run(['--overwrite', 'never']);
    expect(never.actions).toEqual({ a: 'skipped', b: 'skipped' });
    expect(ino('a')).toBe(ino('b'));
  });

  it('bad usage exits 2: an unknown --overwrite mode, --dry-run with --verify', async () => {
    const t = tmp.make('keep-restore-opts-t-');
    const bad = await runKeep(['restore', snapshot, '--target', t, '--overwrite', 'sometimes'], env);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--overwrite takes always, if-changed, if-newer, never, not sometimes/);
    const both = await runKeep(['restore', snapshot, '--target', t, '--dry-run', '--verify'], env);
    expect(both.code).toBe(2);
  });

  describe('over gRPC (keepd on loopback)', () => {
    afterAll(killAllKeepd);

    it('if-newer and --delete decide the same through a keepd; then always with --verify leaves the snapshot, verified', async () => {
      const dir = tmp.make('keep-restore-opts-grpc-');
      const data = path.join(dir, 'data');
      await keepdInit(data);
      const agent = await createToken(data, 'agent', { sources: ['files'] });
      const keepd = await startKeepd(data);
      const genv = agentEnv(keepd, agent.token);
      await keepJson(['init', '--kdf-cost', '12'], genv);
      const saved = snapshot;
      snapshot = (await keepJson(['backup', src, '--source', 'files'], genv)).snapshot;
      try {
        const t = await prepared(genv);
        const { actions, summary } = await restore(t, ['--overwrite', 'if-newer', '--delete'], genv);
        expect(actions).toMatchObject({ 'older.txt': 'updated', 'newer.txt': 'skipped', 'sub/missing.txt': 'restored', 'extra.txt': 'deleted' });
        expect(summary).toMatchObject({ files_restored: 2, files_skipped: 5, files_deleted: 3 });
        const verified = await restore(t, ['--verify'], genv);
        expect(verified.summary).toMatchObject({ files_restored: 3, files_skipped: 4, files_verified: 7, verify_failures: [] });
        expect(contents(t)).toEqual(snapshotContents());
      } finally {
        snapshot = saved;
      }
    });
  });
});
