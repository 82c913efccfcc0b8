/**
 * PostgreSQL drills (`keep drill` on a postgres source) against a real
 * PostgreSQL and a real keepd: a cluster archives its WAL through keep pg
 * wal-push, keep pg backup records its tables' row counts (sealed in the
 * base backup), rows are added after the backup; the drill restores base
 * backup + WAL into a scratch directory, recovers it with a private server on
 * a Unix socket, compares the row counts where recovery became consistent,
 * replays to the end of the archive, runs pg_amcheck and the --check SQL,
 * and reports a 'postgres' drill to keepd. A check that is not true fails
 * the drill (exit 4, reported). Nothing is left behind, and the live
 * cluster's archive gets nothing from the drill's server.
 */
import fs from 'node:fs';
import path from 'node:path';
import { processAlive } from '@keep/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDirs } from './helpers.js';
import { Cluster, keepdForPostgres, own, pgOk, SKIP, waitUntil } from './pg-cluster.js';
import { Keepd, keepdJson, killAllKeepd, runKeep, startKeep } from './keepd-harness.js';

if (SKIP) console.warn(`drill-postgres: SKIPPED: ${SKIP}`);

describe.skipIf(Boolean(SKIP))('keep drill on a PostgreSQL source (real PostgreSQL, real keepd)', () => {
  const tmp = tempDirs();
  let dir: string;
  let keepd: Keepd;
  let env: Record<string, string>;
  let primary: Cluster;
  let scratchParent: string;
  /** ms just after the last row was committed (after the base backup) */
  let lastCommit = 0;

  beforeAll(async () => {
    dir = tmp.make('keep-pgdrill-');
    fs.chmodSync(dir, 0o755); // the postgres user must reach its directories below
    const k = await keepdForPostgres(dir, 'pg drill passphrase', ['db']);
    keepd = k.keepd;
    env = k.envFor('db');
    const init = await runKeep(['init', '--kdf-cost', '12', '--json'], env);
    expect(init.code, init.stderr).toBe(0);
    for (const d of ['pg1', 'logs']) {
      fs.mkdirSync(path.join(dir, d));
      own(path.join(dir, d));
    }
    fs.mkdirSync(path.join(dir, 'pg1', 'sock'));
    own(path.join(dir, 'pg1', 'sock'));
    scratchParent = path.join(dir, 'scratch');
    fs.mkdirSync(scratchParent);

    primary = new Cluster(path.join(dir, 'pg1', 'data'), path.join(dir, 'pg1', 'sock'), 54331, path.join(dir, 'logs', 'pg1.log'));
    await pgOk('initdb', ['-D', primary.data, '-U', 'postgres', '-A', 'trust', '--no-sync', '-E', 'UTF8', '--locale=C']);
    const config = await runKeep(['pg', 'config', '--source', 'db', '--json'], env);
    expect(config.code, config.stderr).toBe(0);
    const archiveCommand = JSON.parse(config.stdout).archive_command as string;
    fs.appendFileSync(
      path.join(primary.data, 'postgresql.conf'),
      ['', "listen_addresses = ''", 'wal_level = replica', 'archive_mode = on', `archive_command = '${archiveCommand.replace(/'/g, "''")}'`, 'shared_buffers = 32MB', ''].join('\n'),
    );
    await primary.start();
  });

  afterAll(async () => {
    await primary?.stop('immediate').catch(() => undefined);
    await killAllKeepd();
  });

  async function switchAndArchive(): Promise<void> {
    const seg = await primary.sql('SELECT pg_walfile_name(pg_switch_wal())');
    await waitUntil(`${seg} archived`, async () => {
      const [last, failed] = (await primary.sql("SELECT coalesce(last_archived_wal, ''), failed_count FROM pg_stat_archiver")).split('|');
      if (Number(failed) > 0) throw new Error(`archive_command failed:\n${primary.logText().slice(-3000)}`);
      return last >= seg && !last.endsWith('.history');
    }, 120_000);
  }

  const drill = (extra: string[]) => runKeep(['drill', '--source', 'db', '--target', scratchParent, '--json', ...extra], env, { timeoutMs: 300_000 });
  const lastJson = (stdout: string) => JSON.parse(stdout.trim().split('\n').pop()!);

  it('keep pg backup records row counts; the drill recovers, validates and reports', async () => {
    await primary.sql('CREATE TABLE orders (id int PRIMARY KEY, note text)');
    await primary.sql("INSERT INTO orders SELECT g, 'order ' || g FROM generate_series(1, 250) g");
    await primary.sql('CREATE SCHEMA shop');
    await primary.sql('CREATE TABLE shop.items (id int)');
    await primary.sql('INSERT INTO shop.items SELECT generate_series(1, 40)');
    const b = await runKeep(['pg', 'backup', '--pgdata', primary.data, '--source', 'db', '--socket', primary.sock, '--port', String(primary.port), '--user', 'postgres', '--checkpoint', 'fast', '--json'], env, { timeoutMs: 180_000 });
    expect(b.code, b.stderr).toBe(0);
    // rows after the backup: the drill replays them from the archived WAL
    await primary.sql("INSERT INTO orders SELECT g, 'late ' || g FROM generate_series(251, 260) g");
    lastCommit = Date.now();
    await switchAndArchive();

    const r = await drill(['--check', 'select count(*) = 260 from orders', '--check', "select exists (select 1 from orders where note = 'late 260')"]);
    expect(r.code, `${r.stderr}\n${r.stdout}`).toBe(0);
    const d = lastJson(r.stdout);
    expect(d).toMatchObject({ message_type: 'drill', kind: 'postgres', mode: 'write', result: 'success', source: 'db', checks_run: 2, failures: [], error: null });
    expect(d.base).toBe(JSON.parse(b.stdout).snapshot);
    expect(d.snapshot).toBe(d.base);
    // orders and shop.items were counted at backup time and matched where recovery became consistent
    expect(d.tables_counted).toBeGreaterThanOrEqual(2);
    expect(['ok', 'skipped']).toContain(d.amcheck);
    expect(d.consistent_ms).toBeGreaterThan(0);
    expect(d.promoted_ms).toBeGreaterThanOrEqual(d.consistent_ms);
    expect(d.duration_ms).toBeGreaterThanOrEqual(d.promoted_ms);
    // the recovery target reached: the last commit replayed, the late rows' insert
    expect(d.recovered_to_ms).toBeGreaterThan(lastCommit - 30_000);
    expect(d.recovered_to_ms).toBeLessThanOrEqual(lastCommit + 1000);
    expect(d.reported).toMatch(/^reported to keepd/);
    console.log(`drill-postgres figures: consistent after ${d.consistent_ms} ms, promoted after ${d.promoted_ms} ms, whole drill ${d.duration_ms} ms, pg_amcheck ${d.amcheck}`);
    // the drill removed its scratch (and its server is gone with it)
    expect(fs.readdirSync(scratchParent)).toEqual([]);

    const s = await keepdJson(['status', '--data', path.join(dir, 'keepd'), '--json']);
    const row = (s.drills as any[]).find((x) => x.source === 'db');
    expect(row).toMatchObject({ drills: 1, failures: 0, last_result: 'success' });
    // the RTO of a PostgreSQL source is its time to a promoted server, extrapolated from the base backup
    // (not from the newest snapshot, a WAL segment): the base drilled is the newest, so the estimate is that time
    // (the restore writes a few bytes of recovery settings the snapshot does not count)
    expect(Math.abs(row.current_bytes - d.bytes)).toBeLessThan(4096);
    expect(Math.abs(row.rto_estimate_s * 1000 - d.promoted_ms)).toBeLessThanOrEqual(d.promoted_ms * 0.001 + 2);
    expect(row.rto_estimate_s * 1000).toBeLessThan(d.duration_ms);
  }, 600_000);

  it('a custom check that is not true fails the drill: exit 4, reported to keepd', async () => {
    const r = await drill(['--check', 'select count(*) > 100000 from orders']);
    expect(r.code, r.stderr).toBe(4);
    const d = lastJson(r.stdout);
    expect(d).toMatchObject({ kind: 'postgres', result: 'failure', error_class: 'CORRUPT' });
    expect(d.failures).toEqual(['check "select count(*) > 100000 from orders": returned f, not true']);
    expect(r.stderr).toMatch(/PostgreSQL drill of source db failed/);
    expect(fs.readdirSync(scratchParent)).toEqual([]);
    const s = await keepdJson(['status', '--data', path.join(dir, 'keepd'), '--json']);
    expect((s.drills as any[]).find((x) => x.source === 'db')).toMatchObject({ drills: 2, failures: 1, last_result: 'failure' });
  }, 600_000);

  it('a stale scratch directory of a killed drill is removed at the next start, its server stopped', async () => {
    const r = startKeep(['drill', '--source', 'db', '--target', scratchParent, '--json'], env);
    // wait until the drill's private server runs on the scratch data, then kill keep
    const pidFile = await waitForPostmaster();
    const serverPid = Number(fs.readFileSync(pidFile, 'utf8').split('\n')[0]);
    r.child.kill('SIGKILL');
    await r.result;
    expect(fs.readdirSync(scratchParent)).toHaveLength(1);
    const again = await drill([]);
    expect(again.code, again.stderr).toBe(0);
    expect(lastJson(again.stdout).stale_removed).toBe(1);
    expect(fs.readdirSync(scratchParent)).toEqual([]);
    await waitUntil('the killed drill\'s server stopped', async () => !processAlive(serverPid), 120_000);
  }, 900_000);

  async function waitForPostmaster(): Promise<string> {
    let found = '';
    await waitUntil('the drill\'s server started', async () => {
      for (const d of fs.readdirSync(scratchParent)) {
        const p = path.join(scratchParent, d, 'restore', 'postmaster.pid');
        if (fs.existsSync(p) && fs.readFileSync(p, 'utf8').split('\n')[0]) found = p;
      }
      return found !== '';
    }, 240_000);
    return found;
  }
});
