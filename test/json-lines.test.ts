/**
 * Progress and restic's JSON lines (issue 15): `backup --json` and
 * `restore --json` stream "status" messages on stdout while they run and end
 * with one "summary"; a skipped entry is an "error" message on stderr naming
 * it; a fatal error under --json is an "exit_error" message. On a terminal,
 * the progress line shows percent, files and bytes of the total, rate and ETA.
 * Real agent, real embedded repository, real files (an unreadable one).
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { initRepo, jsonLines, keep, KEEP_BIN, MiB, prng, RunOptions, summaryLine, tempDirs } from './helpers.js';

const tmp = tempDirs();
const NOBODY = 65534;
const asRoot = process.getuid?.() === 0;
const hasScript = spawnSync('script', ['--version']).status === 0;
// status messages many times a second (restic's RESTIC_PROGRESS_FPS): a short backup still shows some
const FAST = { KEEP_PROGRESS_FPS: '60' };

/** A source with files in two directories, one file nobody but its owner's root can read. */
function makeSource(base: string): { src: string; secret: string } {
  const src = path.join(base, 'src');
  fs.mkdirSync(path.join(src, 'sub', 'deep'), { recursive: true });
  fs.writeFileSync(path.join(src, 'big.bin'), prng(1, 24 * MiB));
  fs.writeFileSync(path.join(src, 'a.txt'), 'alpha\n');
  fs.writeFileSync(path.join(src, 'sub', 'b.txt'), 'beta\n');
  fs.writeFileSync(path.join(src, 'sub', 'deep', 'c.txt'), 'gamma\n');
  const secret = path.join(src, 'secret.txt');
  fs.writeFileSync(secret, 'not for the backup\n');
  fs.chmodSync(secret, 0o000);
  return { src, secret };
}

describe('backup --json and restore --json: restic JSON lines', () => {
  it('status lines, an error line naming the unreadable file, a summary counting new/changed/unmodified across runs, exit 3', async () => {
    const base = tmp.make('keep-json-lines-');
    fs.chmodSync(base, 0o755);
    const { env } = await initRepo(base);
    const { src, secret } = makeSource(base);
    // Root reads any file: the backup runs as nobody, for whom secret.txt (mode 000) is unreadable.
    if (asRoot) execFileSync('chown', ['-R', `${NOBODY}:${NOBODY}`, base]);
    const opts: RunOptions = { env: { ...env, ...FAST, HOME: base }, wrap: asRoot ? ['setpriv', `--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', '--'] : undefined };

    const first = await keep(['backup', src, '--json'], opts);
    expect(first.code, first.stderr).toBe(3);
    const lines = jsonLines(first);
    const statuses = lines.filter((m) => m.message_type === 'status');
    expect(statuses.length, first.stdout.slice(0, 500)).toBeGreaterThan(0);
    for (const s of statuses) {
      expect(s).toMatchObject({ seconds_elapsed: expect.any(Number), total_files: expect.any(Number), files_done: expect.any(Number), total_bytes: expect.any(Number), bytes_done: expect.any(Number), error_count: expect.any(Number) });
      expect(s.percent_done).toBeGreaterThanOrEqual(0);
      expect(s.percent_done).toBeLessThanOrEqual(1);
      expect(Array.isArray(s.current_files)).toBe(true);
    }
    // progress only goes forward
    for (let i = 1; i < statuses.length; i++) expect(statuses[i].bytes_done).toBeGreaterThanOrEqual(statuses[i - 1].bytes_done);

    const s1 = summaryLine(first);
    expect(s1).toMatchObject({ files_new: 4, files_changed: 0, files_unmodified: 0, dirs_changed: 0, dirs_unmodified: 0, total_files_processed: 4, skipped: 1 });
    expect(s1.total_bytes_processed).toBe(24 * MiB + 6 + 5 + 6);
    // every directory is new: the ones leading to src, src, sub and sub/deep
    expect(s1.dirs_new).toBe(s1.dirs);
    expect(s1.dirs_new).toBe(src.split('/').filter(Boolean).length + 2);
    expect(s1.snapshot_id).toMatch(/^[0-9a-f]{32}$/);
    expect(s1.snapshot_id).toBe(s1.snapshot);
    expect(s1.data_blobs).toBeGreaterThan(0);
    expect(s1.tree_blobs).toBe(s1.dirs + 1);
    expect(s1.data_added).toBeGreaterThanOrEqual(24 * MiB);
    expect(s1.data_added_packed).toBeGreaterThan(0);
    expect(Date.parse(s1.backup_end)).toBeGreaterThanOrEqual(Date.parse(s1.backup_start));
    expect(s1.total_duration).toBeGreaterThan(0);

    // stderr: restic's "error" message for the skipped file, nothing else
    const errors = first.stderr.split('\n').filter(Boolean).map((l) => JSON.parse(l));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ message_type: 'error', during: 'archival', item: secret });
    expect(errors[0].error.message).toMatch(/EACCES/);

    // Second run: one file changed, one new, the rest as before (sub/deep untouched).
    fs.appendFileSync(path.join(src, 'a.txt'), 'more\n');
    fs.writeFileSync(path.join(src, 'sub', 'new.txt'), 'new\n');
    const second = await keep(['backup', src, '--json'], opts);
    expect(second.code, second.stderr).toBe(3);
    const s2 = summaryLine(second);
    expect(s2).toMatchObject({ files_new: 1, files_changed: 1, files_unmodified: 3, total_files_processed: 5, dirs_new: 0, dirs_unmodified: 1, parent: s1.snapshot_id });
    // src and sub changed, and so every directory above src (their trees name the changed one)
    expect(s2.dirs_changed).toBe(s2.dirs - 1);
    expect(s2.data_added).toBeLessThan(MiB);

    // --quiet: the summary alone (restic's -q)
    fs.writeFileSync(path.join(src, 'sub', 'new.txt'), prng(2, 4 * MiB));
    const quiet = await keep(['backup', src, '--json', '--quiet'], opts);
    expect(quiet.code, quiet.stderr).toBe(3);
    expect(jsonLines(quiet).map((m) => m.message_type)).toEqual(['summary']);

    // restore --json: status lines, then restic's restore summary
    const target = path.join(base, 'target');
    const restored = await keep(['restore', 'latest', '--target', target, '--json'], opts);
    expect(restored.code, restored.stderr).toBe(0);
    for (const m of jsonLines(restored).slice(0, -1)) {
      expect(m.message_type).toBe('status');
      expect(m.percent_done).toBeLessThanOrEqual(1);
      expect(m.total_files).toBe(5);
    }
    const r = summaryLine(restored);
    expect(r).toMatchObject({ total_files: 5, files_restored: 5, files_skipped: 0, total_bytes: 24 * MiB + 4 * MiB + 11 + 5 + 6, bytes_restored: 24 * MiB + 4 * MiB + 11 + 5 + 6 });
    expect(r.seconds_elapsed).toBeGreaterThanOrEqual(0);
  }, 180_000);

  it('a fatal error under --json is one "exit_error" message on stderr, with the exit code', async () => {
    const base = tmp.make('keep-json-error-');
    const r = await keep(['snapshots', '--json'], { env: { KEEP_REPO: path.join(base, 'missing'), KEEP_PASSWORD: 'pw' } });
    expect(r.code).toBe(10);
    expect(r.stdout).toBe('');
    const lines = r.stderr.split('\n').filter(Boolean);
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0])).toMatchObject({ message_type: 'exit_error', code: 10, message: expect.stringMatching(/not a Keep repository/) });
  });
});

describe('progress on a terminal', () => {
  it.skipIf(!hasScript)('backup and restore show percent, files and bytes of the total, rate and an ETA', async () => {
    const base = tmp.make('keep-tty-');
    const { env } = await initRepo(base);
    const src = path.join(base, 'src');
    fs.mkdirSync(src);
    for (let i = 0; i < 4; i++) fs.writeFileSync(path.join(src, `f${i}.bin`), prng(10 + i, 12 * MiB));
    const screen = await onTerminal(['backup', src], { ...env, ...FAST });
    expect(screen.code, screen.text).toBe(0);
    expect(screen.text).toMatch(/\d+\.\d\d% {2}\d+ \/ 4 files {2}[\d.]+ \S+ \/ 48\.0 MiB {2}[\d.]+ MB\/s {2}ETA \d+:\d\d/);
    // the line is cleared before the summary prints
    expect(screen.text).toMatch(/snapshot [0-9a-f]{8} saved/);

    // restore: its total is the snapshot's size from the start
    const restored = await onTerminal(['restore', 'latest', '--target', path.join(base, 'target')], { ...env, ...FAST });
    expect(restored.code, restored.text).toBe(0);
    expect(restored.text).toMatch(/\d+\.\d\d% {2}\d+ \/ 4 files {2}[\d.]+ \S+ \/ 48\.0 MiB {2}\S+ MB\/s {2}ETA /);
  }, 120_000);
});

/** `keep ARGS` on a pseudo-terminal (util-linux script): what the terminal showed and the exit code. */
function onTerminal(args: string[], env: Record<string, string>): Promise<{ code: number | null; text: string }> {
  const clean: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('KEEP_')) clean[k] = v;
  const sq = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  const child = spawn('script', ['-qec', [KEEP_BIN, ...args].map(sq).join(' '), '/dev/null'], { env: { ...clean, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
  let text = '';
  child.stdout.on('data', (b: Buffer) => (text += b.toString()));
  child.stderr.on('data', (b: Buffer) => (text += b.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 90_000);
  return new Promise((resolve) =>
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, text });
    }),
  );
}
