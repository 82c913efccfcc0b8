import { execFile } from 'node:child_process';
import { pgProgram } from '../pg/env.js';
import { RowCounts, TABLES_SQL } from '../pg/row-counts.js';
import { PrivateServer, SOCKET_PORT } from './pg-server.js';

/**
 * Every table the base backup counted, counted again on the restored server
 * (stopped where it first became consistent): a missing database or table,
 * or another count, is a failure ("db.table: why").
 */
export async function compareRowCounts(server: PrivateServer, user: string, recorded: RowCounts): Promise<{ tables: number; failures: string[] }> {
  const failures: string[] = [];
  let tables = 0;
  for (const [db, want] of Object.entries(recorded.databases)) {
    const list = await server.sql(TABLES_SQL, user, db);
    if (!list.ok) {
      failures.push(`database ${db}: ${list.error}`);
      continue;
    }
    const present = new Set(list.rows.map((r) => r[0]));
    for (const [table, rows] of Object.entries(want)) {
      tables++;
      if (!present.has(table)) {
        failures.push(`${db}.${table}: missing (the backup counted ${rows} rows)`);
        continue;
      }
      const got = await server.sql(`SELECT count(*) FROM ${table}`, user, db);
      if (!got.ok) failures.push(`${db}.${table}: ${got.error}`);
      else if (Number(got.rows[0]?.[0]) !== rows) failures.push(`${db}.${table}: ${got.rows[0]?.[0]} rows, the backup counted ${rows}`);
    }
  }
  return { tables, failures };
}

/** A user's check: one SQL statement that must return exactly one value, true. */
export async function runSqlCheck(server: PrivateServer, user: string, db: string, sql: string): Promise<string | undefined> {
  const r = await server.sql(sql, user, db);
  if (!r.ok) return `check "${sql}": ${r.error}`;
  if (r.rows.length !== 1 || r.rows[0].length !== 1) return `check "${sql}": returned ${r.rows.length} row(s), not one value`;
  return r.rows[0][0] === 't' ? undefined : `check "${sql}": returned ${r.rows[0][0] || 'null'}, not true`;
}

/**
 * pg_amcheck over every database (B-tree indexes and heaps), installing the
 * amcheck extension into the scratch copy where missing; 'skipped' when
 * pg_amcheck is not installed (PostgreSQL before 14, or no client package).
 */
export async function amcheck(server: PrivateServer, user: string, binDir: string | undefined): Promise<{ state: 'ok' | 'skipped'; failure?: string }> {
  let program: string;
  try {
    program = pgProgram('pg_amcheck', binDir);
  } catch {
    return { state: 'skipped' };
  }
  const args = ['-h', server.socketDir, '-p', SOCKET_PORT, '-U', user, '--all', '--install-missing', '--no-password'];
  return new Promise((resolve) => {
    execFile(program, args, { env: { ...process.env, PGAPPNAME: 'keep drill' }, timeout: 6 * 3600_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (!err) resolve({ state: 'ok' });
      else resolve({ state: 'ok', failure: `pg_amcheck: ${(stdout + stderr).trim().split('\n').slice(0, 3).join(' | ') || err.message}` });
    });
  });
}
