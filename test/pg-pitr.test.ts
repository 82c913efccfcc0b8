/**
 * PostgreSQL point-in-time recovery against a real server: a cluster started
 * here (private Unix socket, as the `postgres` user when the test runs as
 * root) archives its WAL through `keep pg wal-push` into a real keepd;
 * `keep pg backup` takes a base backup while pgbench writes; rows are then
 * committed one by one with their times recorded; `keep pg restore --at`
 * a time between two of them builds a new data directory, a second server
 * recovers it through `keep pg wal-fetch`, and exactly the rows committed
 * before that time are there. Then timelines (the restored server archives
 * timeline 2), retention (keepd forget drops WAL no kept base backup needs)
 * and the recovery window in keepd status.
 *
 * PostgreSQL comes from scripts/test-deps.mjs (apt-get install postgresql as
 * root); this file runs it too when initdb is missing, and skips with the
 * reason only when PostgreSQL cannot be installed.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDirs } from './helpers.js';
import { Cluster, keepdForPostgres, own, pg, pgOk, sleep, SKIP, waitUntil } from './pg-cluster.js';
import { Keepd, keepdJson, killAllKeepd, runKeep } from './keepd-harness.js';

if (SKIP) console.warn(`pg-pitr: SKIPPED: ${SKIP}`);

// ---------------------------------------------------------------- the test

describe.skipIf(Boolean(SKIP))('PostgreSQL point-in-time recovery through keep (real PostgreSQL, real keepd)', () => {
  const tmp = tempDirs();
  let dir: string;
  let keepd: Keepd;
  let env: Record<string, string>;
  let benchEnv: Record<string, string>;
  let primary: Cluster;
  let restored: Cluster | undefined;
  let again: Cluster | undefined;
  let base: any;
  /** rows committed one by one: [id, ms before the INSERT was sent, ms after it returned] */
  const rows: { id: number; before: number; after: number }[] = [];
  let target = 0;
  /** ms just before the commit that follows row 8 */
  let marker = 0;
  let tablespaceOid = '';
  const figures: Record<string, string> = {};

  beforeAll(async () => {
    dir = tmp.make('keep-pg-');
    fs.chmodSync(dir, 0o755); // the postgres user must reach its directories below
    // secrets in files the postgres user can read: archive_command and restore_command run as it
    const k = await keepdForPostgres(dir, 'pitr test passphrase', ['db', 'bench']);
    keepd = k.keepd;
    env = k.envFor('db');
    benchEnv = k.envFor('bench');
    const init = await runKeep(['init', '--kdf-cost', '12', '--json'], env);
    expect(init.code, init.stderr).toBe(0);

    // PostgreSQL's directories belong to the user it runs as; keepd's stay root's.
    for (const d of ['pg1', 'pg2', 'pg3', 'ts1', 'ts2', 'ts3', 'logs']) {
      fs.mkdirSync(path.join(dir, d));
      if (d.startsWith('pg')) fs.mkdirSync(path.join(dir, d, 'sock'));
      own(path.join(dir, d));
    }

    primary = new Cluster(path.join(dir, 'pg1', 'data'), path.join(dir, 'pg1', 'sock'), 54321, path.join(dir, 'logs', 'pg1.log'));
    await pgOk('initdb', ['-D', primary.data, '-U', 'postgres', '-A', 'trust', '--no-sync', '-E', 'UTF8', '--locale=C']);
    const config = await runKeep(['pg', 'config', '--source', 'db', '--json'], env);
    expect(config.code, config.stderr).toBe(0);
    const archiveCommand = JSON.parse(config.stdout).archive_command as string;
    expect(archiveCommand).toContain('pg wal-push --source db');
    expect(archiveCommand).not.toContain('pitr test passphrase');
    expect(JSON.parse(config.stdout).archive_timeout).toBe(`${15 * 60}s`); // standard tier's RPO by default
    const critical = await runKeep(['pg', 'config', '--source', 'db', '--tier', 'critical'], env);
    expect(critical.stdout).toMatch(/^archive_timeout = '60s'/m);
    expect(critical.stdout).toMatch(/wal-push --source db --tier critical/);
    fs.appendFileSync(
      path.join(primary.data, 'postgresql.conf'),
      [
        '',
        "listen_addresses = ''",
        'wal_level = replica',
        'archive_mode = on',
        `archive_command = '${archiveCommand.replace(/'/g, "''")}'`,
        'shared_buffers = 32MB',
        'max_wal_size = 256MB',
        "log_line_prefix = '%m [%p] '",
        '',
      ].join('\n'),
    );
    await primary.start();
  });

  afterAll(async () => {
    for (const c of [again, restored, primary]) await c?.stop('immediate').catch(() => undefined);
    await killAllKeepd();
    if (Object.keys(figures).length) console.log(`pg-pitr figures:\n${Object.entries(figures).map(([k, v]) => `  ${k}: ${v}`).join('\n')}`);
  });

  /** Force a segment switch and wait until PostgreSQL reports it archived (through keep). */
  async function switchAndArchive(c: Cluster): Promise<string> {
    const seg = await c.sql('SELECT pg_walfile_name(pg_switch_wal())');
    await waitUntil(`${seg} archived`, async () => {
      const [last, failed] = (await c.sql('SELECT coalesce(last_archived_wal, \'\'), failed_count FROM pg_stat_archiver')).split('|');
      if (Number(failed) > 0) throw new Error(`archive_command failed:\n${c.logText().slice(-3000)}`);
      return last >= seg && !last.endsWith('.history');
    }, 60_000);
    return seg;
  }

  it('takes a base backup of a running cluster under load, its WAL archived through keep', async () => {
    await pgOk('pgbench', [...primary.conn(), '-i', '-s', '5', '-q', 'postgres']);
    await primary.sql(`CREATE TABLESPACE ts LOCATION '${path.join(dir, 'ts1')}'`);
    tablespaceOid = await primary.sql("SELECT oid FROM pg_tablespace WHERE spcname = 'ts'");
    await primary.sql('CREATE TABLE pitr (id int PRIMARY KEY, note text) TABLESPACE ts');
    // pgbench keeps writing while the base backup copies the files.
    const load = pg('pgbench', [...primary.conn(), '-c', '2', '-j', '2', '-T', '6', 'postgres']);
    await sleep(500);
    const t0 = Date.now();
    const r = await runKeep(['pg', 'backup', '--pgdata', primary.data, '--source', 'db', '--socket', primary.sock, '--port', String(primary.port), '--user', 'postgres', '--checkpoint', 'fast', '--json'], env, { timeoutMs: 120_000 });
    expect(r.code, r.stderr).toBe(0);
    figures['base backup (pgbench -s 5 running)'] = `${((Date.now() - t0) / 1000).toFixed(1)} s`;
    base = JSON.parse(r.stdout);
    expect((await load).code).toBe(0);

    expect(base.snapshot).toMatch(/^[0-9a-f]{32}$/);
    expect(base.timeline).toBe(1);
    expect(base.start_wal).toMatch(/^00000001[0-9A-F]{16}$/);
    expect(base.stop_wal >= base.start_wal).toBe(true);
    expect(Date.parse(base.stop_time)).toBeGreaterThan(Date.parse(base.start_time));
    expect(base.tablespaces).toEqual([{ oid: tablespaceOid, location: path.join(dir, 'ts1') }]);
    expect(base.tags).toEqual(expect.arrayContaining(['pg-base', 'timeline:1', `start-wal:${base.start_wal}`, `stop-wal:${base.stop_wal}`, `start-lsn:${base.start_lsn}`, `stop-lsn:${base.stop_lsn}`]));
    expect(base.files).toBeGreaterThan(500);
    expect(base.bytes).toBeGreaterThan(60 * 1024 * 1024);

    // Every segment the backup needs is in the repository, as a snapshot of the same source.
    const snaps = JSON.parse((await runKeep(['snapshots', '--source', 'db', '--json'], env)).stdout) as { tags: string[]; auth: string }[];
    const walNames = snaps.flatMap((s) => s.tags.filter((t) => t.startsWith('wal:')).map((t) => t.slice(4)));
    expect(walNames).toContain(base.start_wal);
    expect(walNames).toContain(base.stop_wal);
    // The base backup and every WAL push carry the agent's MAC (keepd could not have written them).
    expect(new Set(snaps.map((s) => s.auth))).toEqual(new Set(['authentic']));
    // PostgreSQL's backup history file reaches the archive too (it may trail the stop segment a little).
    await waitUntil('backup history file archived', async () => {
      const s = JSON.parse((await runKeep(['snapshots', '--source', 'db', '--json'], env)).stdout) as { tags: string[] }[];
      return s.some((x) => x.tags.some((t) => t.startsWith(`wal:${base.start_wal}.`) && t.endsWith('.backup')));
    }, 20_000);
  });

  it('commits rows one by one with known times, and the WAL holding them reaches the archive', async () => {
    for (let id = 1; id <= 8; id++) {
      const before = Date.now();
      await primary.sql(`INSERT INTO pitr VALUES (${id}, 'row ${id}')`);
      rows.push({ id, before, after: Date.now() });
      if (id === 3 || id === 6) await switchAndArchive(primary);
      if (id === 5) await pgOk('pgbench', [...primary.conn(), '-c', '2', '-T', '2', 'postgres']);
      await sleep(300);
    }
    // One more commit after the rows: a recovery target after row 8 needs a later commit to stop at.
    await sleep(300);
    marker = Date.now();
    await primary.sql('CREATE TABLE after_rows (x int)');
    const last = await switchAndArchive(primary);
    // The window ends at PostgreSQL's last write into the newest archived segment (its mtime), at or before its push.
    const info = JSON.parse((await runKeep(['pg', 'info', '--source', 'db', '--json'], env)).stdout);
    expect(info.window.newest_wal.name).toBe(last);
    expect(info.window.to).toBe(info.window.newest_wal.end);
    expect(Date.parse(info.window.to)).toBeLessThanOrEqual(Date.parse(info.window.newest_wal.time));
    expect(Date.parse(info.window.to)).toBeGreaterThanOrEqual(marker - 50);
    // Between row 4 (committed) and row 5 (not yet sent): mid-way, far from both.
    target = Math.round((rows[3].after + rows[4].before) / 2);
    expect(rows[4].before - rows[3].after).toBeGreaterThan(250);
  });

  it('wal-push is idempotent for the same content and refuses different content under an archived name', async () => {
    // A segment PostgreSQL archived and has not recycled yet.
    const statusDir = path.join(primary.data, 'pg_wal', 'archive_status');
    const done = fs.readdirSync(statusDir).filter((f) => /^[0-9A-F]{24}\.done$/.test(f)).sort();
    expect(done.length).toBeGreaterThan(0);
    const name = done[done.length - 1].replace('.done', '');
    const copy = path.join(dir, 'copy');
    fs.mkdirSync(copy);
    fs.copyFileSync(path.join(primary.data, 'pg_wal', name), path.join(copy, name));

    const count = async () => JSON.parse((await runKeep(['snapshots', '--source', 'db', '--json'], env)).stdout).filter((s: any) => s.tags.includes(`wal:${name}`)).length;
    expect(await count()).toBe(1);
    for (let i = 0; i < 2; i++) {
      const r = await runKeep(['pg', 'wal-push', '--source', 'db', '--json', path.join(copy, name)], env);
      expect(r.code, r.stderr).toBe(0);
      const j = JSON.parse(r.stdout);
      expect(j.already).toBe(true);
      expect(j.bytes_sent).toBe(0);
    }
    expect(await count()).toBe(1);

    // Same name, other content: fails loudly, stores nothing.
    const bad = fs.readFileSync(path.join(copy, name));
    bad[bad.length - 100] ^= 0xff;
    fs.mkdirSync(path.join(copy, 'bad'));
    fs.writeFileSync(path.join(copy, 'bad', name), bad);
    const r = await runKeep(['pg', 'wal-push', '--source', 'db', path.join(copy, 'bad', name)], env);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/^keep: error: .*already archived .*different content/);
    expect(await count()).toBe(1);

    // Latency of a fresh push of real 16 MiB segments (another source, so nothing dedups against db).
    const segs = fs.readdirSync(path.join(primary.data, 'pg_wal')).filter((f) => /^[0-9A-F]{24}$/.test(f) && fs.existsSync(path.join(statusDir, `${f}.done`))).slice(0, 3);
    const times: number[] = [];
    for (const s of segs) {
      fs.copyFileSync(path.join(primary.data, 'pg_wal', s), path.join(copy, s));
      const t0 = Date.now();
      const p = await runKeep(['pg', 'wal-push', '--source', 'bench', '--json', path.join(copy, s)], benchEnv);
      times.push(Date.now() - t0);
      expect(p.code, p.stderr).toBe(0);
      expect(JSON.parse(p.stdout).already).toBe(false);
    }
    if (times.length) figures['wal-push per 16 MiB segment (process start to exit, kdf-cost 12, loopback keepd)'] = `${times.map((t) => `${t} ms`).join(', ')}`;
  });

  it('wal-fetch of a missing segment or history file exits non-zero quietly; of an archived one writes it', async () => {
    const dest = path.join(dir, 'fetched');
    for (const missing of ['0000000100000007000000FE', '0000000A.history']) {
      const r = await runKeep(['pg', 'wal-fetch', '--source', 'db', missing, dest], env);
      expect(r.code).toBe(1);
      expect(r.stderr).toBe('');
      expect(r.stdout).toBe('');
      expect(fs.existsSync(dest)).toBe(false);
    }
    const r = await runKeep(['pg', 'wal-fetch', '--source', 'db', '--json', base.start_wal, dest], env);
    expect(r.code, r.stderr).toBe(0);
    expect(fs.statSync(dest).size).toBe(16 * 1024 * 1024);
    // The segments after it came along (into keep-prefetch/ beside the destination); the next call takes one from there.
    const ahead = JSON.parse(r.stdout).prefetched as string[];
    expect(ahead.length).toBeGreaterThan(0);
    expect(fs.readdirSync(path.join(dir, 'keep-prefetch')).sort()).toEqual([...ahead].sort());
    const next = await runKeep(['pg', 'wal-fetch', '--source', 'db', '--json', ahead[0], dest], env);
    expect(next.code, next.stderr).toBe(0);
    expect(JSON.parse(next.stdout).prefetched).toBe(true);
    expect(fs.statSync(dest).size).toBe(16 * 1024 * 1024);
    expect(fs.readdirSync(path.join(dir, 'keep-prefetch'))).not.toContain(ahead[0]);
    // A repository that cannot be reached is not "missing": PostgreSQL must stop, not end recovery there.
    const down = await runKeep(['pg', 'wal-fetch', '--source', 'db', base.start_wal, dest + '2'], { ...env, KEEP_REPO: 'grpc://127.0.0.1:1' });
    expect(down.code).toBeGreaterThan(125);
  });

  it('restores to a time between two commits: exactly the rows committed before it', async () => {
    const pgdata = path.join(dir, 'pg2', 'data');
    const at = new Date(target).toISOString();
    if (keepd.exited()) throw new Error(`keepd exited ${JSON.stringify(keepd.exited())}:\n${keepd.output().slice(-5000)}`);
    const t0 = Date.now();
    const r = await runKeep(['pg', 'restore', '--pgdata', pgdata, '--at', at, '--source', 'db', '--tablespace', `${tablespaceOid}=${path.join(dir, 'ts2')}`, '--json'], env, { timeoutMs: 120_000 });
    expect(r.code, r.stderr).toBe(0);
    const restoreMs = Date.now() - t0;
    const plan = JSON.parse(r.stdout);
    expect(plan.base.snapshot).toBe(base.snapshot);
    expect(plan.at).toBe(at);
    expect(plan.wal.from).toBe(base.start_wal);
    expect(plan.wal.to > base.stop_wal).toBe(true);
    expect(plan.wal.segments).toBeGreaterThanOrEqual(2);
    expect(Date.parse(plan.wal.to_time)).toBeGreaterThanOrEqual(target);
    expect(plan.tablespaces).toEqual([{ oid: tablespaceOid, location: path.join(dir, 'ts2') }]);
    expect(plan.settings.join('\n')).toMatch(/recovery_target_time = '.*'\nrecovery_target_action = 'promote'\nrecovery_target_timeline = 'latest'/);
    expect(fs.existsSync(path.join(pgdata, 'recovery.signal'))).toBe(true);
    expect(fs.readFileSync(path.join(pgdata, 'backup_label'), 'utf8')).toContain(`START WAL LOCATION: ${base.start_lsn} (file ${base.start_wal})`);
    expect(fs.readFileSync(path.join(pgdata, 'tablespace_map'), 'utf8')).toBe(`${tablespaceOid} ${path.join(dir, 'ts2')}\n`);
    expect(fs.readdirSync(path.join(pgdata, 'pg_wal')).filter((f) => f !== 'archive_status')).toEqual([]);

    restored = new Cluster(pgdata, path.join(dir, 'pg2', 'sock'), 54322, path.join(dir, 'logs', 'pg2.log'));
    const t1 = Date.now();
    await restored.start();
    await waitUntil('recovery finished', async () => (await restored!.sql('SELECT pg_is_in_recovery()')) === 'f', 90_000, () => restored!.logText());
    figures['keep pg restore (files + config)'] = `${(restoreMs / 1000).toFixed(1)} s for ${(plan.bytes / 1048576).toFixed(0)} MiB, ${plan.files} files`;
    figures['recovery to promotion (PostgreSQL start, WAL fetched through keep)'] = `${((Date.now() - t1) / 1000).toFixed(1)} s, ${plan.wal.segments} segment(s)`;

    // recovery_end_command removed what was fetched ahead and not needed.
    expect(fs.existsSync(path.join(pgdata, 'pg_wal', 'keep-prefetch'))).toBe(false);
    const log = restored.logText();
    expect(log).toMatch(/starting point-in-time recovery to/);
    expect(log).toMatch(/restored log file "[0-9A-F]{24}" from archive/);
    expect(log).toMatch(/recovery stopping before commit of transaction \d+, time/);
    expect(await restored.sql('SELECT string_agg(id::text, \',\' ORDER BY id) FROM pitr')).toBe('1,2,3,4');
    expect(await restored.sql('SELECT count(*) FROM pgbench_accounts')).toBe('500000');
    expect(await restored.sql(`SELECT pg_tablespace_location(${tablespaceOid})`)).toBe(path.join(dir, 'ts2'));
    // The original is untouched and has all eight.
    expect(await primary.sql('SELECT count(*) FROM pitr')).toBe('8');
  });

  it('the promoted copy archives timeline 2 through keep; --timeline picks which history a later restore follows', async () => {
    // The restored cluster kept archive_command (--archive-mode preserve): its history file reaches the archive.
    await waitUntil('00000002.history archived', async () => (await restored!.sql("SELECT count(*) FROM pg_stat_archiver WHERE last_archived_wal = '00000002.history' OR archived_count > 0")) === '1', 60_000, () => restored!.logText());
    const hist = path.join(dir, 'history');
    await waitUntil('history fetchable', async () => (await runKeep(['pg', 'wal-fetch', '--source', 'db', '00000002.history', hist], env)).code === 0, 30_000);
    expect(fs.readFileSync(hist, 'utf8')).toMatch(/^1\t[0-9A-F]+\/[0-9A-F]+\tbefore \d{4}-\d\d-\d\d/m);
    // And its first timeline-2 segment (a switch makes it complete now rather than whenever autovacuum fills it).
    await restored!.sql('INSERT INTO pitr VALUES (100, \'timeline 2\')');
    expect(await switchAndArchive(restored!)).toMatch(/^00000002/);

    // Rows 5..8 live on timeline 1 after the branch point: 'latest' (PostgreSQL's default) follows
    // timeline 2 from its branch point on, which never saw them; --timeline current stays on 1.
    const at = new Date(Math.round((rows[7].after + marker) / 2)).toISOString();
    const latest = await runKeep(['pg', 'restore', '--pgdata', path.join(dir, 'pg3', 'never'), '--at', at, '--source', 'db', '--dry-run', '--json'], env);
    expect(latest.code, latest.stderr).toBe(0);
    const viaLatest = JSON.parse(latest.stdout);
    expect(viaLatest.dry_run).toBe(true);
    expect(viaLatest.target_timeline).toBe(2);
    expect(viaLatest.timeline_path.map((p: any) => p.timeline)).toEqual([1, 2]);
    expect(viaLatest.timeline_path[1].begins).toMatch(/^00000002/);
    expect(fs.existsSync(path.join(dir, 'pg3', 'never'))).toBe(false);

    const pgdata = path.join(dir, 'pg3', 'data');
    const r = await runKeep(['pg', 'restore', '--pgdata', pgdata, '--at', at, '--source', 'db', '--timeline', 'current', '--tablespace', `${tablespaceOid}=${path.join(dir, 'ts3')}`, '--archive-mode', 'off', '--json'], env, { timeoutMs: 120_000 });
    expect(r.code, r.stderr).toBe(0);
    const viaCurrent = JSON.parse(r.stdout);
    expect(viaCurrent.settings).toContain("recovery_target_timeline = '1'");
    expect(viaCurrent.timeline_path.map((p: any) => p.timeline)).toEqual([1]);
    // Timeline 1's WAL goes on past where timeline 2 branched off.
    expect(viaCurrent.wal.to.slice(8) > viaLatest.timeline_path[1].begins.slice(8)).toBe(true);
    again = new Cluster(pgdata, path.join(dir, 'pg3', 'sock'), 54323, path.join(dir, 'logs', 'pg3.log'));
    await again.start();
    await waitUntil('second recovery finished', async () => (await again!.sql('SELECT pg_is_in_recovery()')) === 'f', 90_000, () => again!.logText());
    expect(await again.sql("SELECT string_agg(id::text, ',' ORDER BY id) FROM pitr")).toBe('1,2,3,4,5,6,7,8');
    expect(await again.sql("SELECT count(*) FROM pg_class WHERE relname = 'after_rows'")).toBe('0');
    expect(await again.sql("SELECT setting FROM pg_settings WHERE name = 'archive_mode'")).toBe('off');
    await again.stop();
  });

  it('keepd forget drops the WAL no kept base backup needs; status shows the recovery window', async () => {
    const second = await runKeep(['pg', 'backup', '--pgdata', primary.data, '--source', 'db', '--socket', primary.sock, '--port', String(primary.port), '--user', 'postgres', '--checkpoint', 'fast', '--json'], env, { timeoutMs: 120_000 });
    expect(second.code, second.stderr).toBe(0);
    const base2 = JSON.parse(second.stdout);
    // A commit after the backup, and its segment archived: the window reaches past the second backup.
    await primary.sql('INSERT INTO after_rows VALUES (1)');
    await switchAndArchive(primary);

    const before = await keepdJson(['status', '--data', keepd.data]);
    const db = before.sources.find((s: any) => s.source === 'db');
    expect(db.pitr.base_backups).toBe(2);
    expect(db.pitr.oldest_base.id).toBe(base.snapshot);
    expect(db.pitr.from).toBe(base.stop_time);
    expect(Date.parse(db.pitr.to)).toBeGreaterThan(Date.parse(base2.stop_time));
    expect(db.pitr.timelines).toEqual([1, 2]);
    expect(db.pitr.gaps).toEqual([]);

    const f = await keepdJson(['forget', '--data', keepd.data, '--source', 'db', '--keep-last', '1']);
    const g = f.groups.find((x: any) => x.source === 'db');
    expect(g.removed).toEqual([base.snapshot]);
    expect(g.snapshots.map((s: any) => s.id).sort()).toEqual([base.snapshot, base2.snapshot].sort());
    expect(g.wal.removed.length).toBeGreaterThan(2);
    expect(g.wal.cutoffs.find((c: any) => c.timeline === 1).start_wal).toBe(base2.start_wal);

    // What the remaining base backup needs is still there; the first one's WAL is gone.
    const left = JSON.parse((await runKeep(['snapshots', '--source', 'db', '--json'], env)).stdout) as { id: string; tags: string[] }[];
    const names = left.flatMap((s) => s.tags.filter((t) => t.startsWith('wal:')).map((t) => t.slice(4)));
    expect(names).toContain(base2.start_wal);
    expect(names).toContain('00000002.history');
    expect(names.filter((n) => /^00000001[0-9A-F]{16}$/.test(n) && n < base2.start_wal)).toEqual([]);
    expect((await runKeep(['pg', 'wal-fetch', '--source', 'db', base.start_wal, path.join(dir, 'gone')], env)).code).toBe(1);
    const early = await runKeep(['pg', 'restore', '--pgdata', path.join(dir, 'pg3', 'early'), '--at', new Date(target).toISOString(), '--source', 'db'], env);
    expect(early.code).not.toBe(0);
    expect(early.stderr).toMatch(/no base backup ended at or before/);

    const after = await keepdJson(['status', '--data', keepd.data]);
    const w = after.sources.find((s: any) => s.source === 'db').pitr;
    expect(w.base_backups).toBe(1);
    expect(w.oldest_base.id).toBe(base2.snapshot);
    expect(w.from).toBe(base2.stop_time);
    // The window's end never moves back (the running primary may archive another segment meanwhile).
    expect(Date.parse(w.to)).toBeGreaterThanOrEqual(Date.parse(db.pitr.to));
    expect(w.gaps).toEqual([]);
    const info = await runKeep(['pg', 'info', '--source', 'db', '--json'], env);
    expect(JSON.parse(info.stdout).window.from).toBe(base2.stop_time);
  });
});
