import { fileChunks, KeepError, SealPool } from '@keep/core';
import type { Unlocked } from '../repo/open.js';
import { TreeReader } from '../tree/tree-reader.js';
import { PgConnectOptions, PsqlSession } from './psql.js';

/** The sealed file at a base backup's root (beside /pgdata) that a PostgreSQL drill checks the restored cluster against. */
export const ROW_COUNTS_FILE = 'keep-row-counts.json';

export interface RowCounts {
  /** the bootstrap superuser (oid 10): who a drill connects as */
  superuser: string;
  /** database -> "schema.table" -> rows */
  databases: Record<string, Record<string, number>>;
}

/** Every user table of the current database (ordinary and partitioned leaves), as "schema.table" -> count(*). */
export const TABLES_SQL = `SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%' ORDER BY 1`;

/** Count the rows of every user table of one database through an open session. */
export async function countTables(psql: PsqlSession): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const [name] of await psql.query(TABLES_SQL)) out[name] = Number(await psql.value(`SELECT count(*) FROM ${name}`));
  return out;
}

/**
 * Row counts of every connectable database, taken by `keep pg backup` just
 * before pg_backup_stop: the state a recovery reaches when it stops as soon
 * as it is consistent (a drill's first phase). Exact for tables no
 * transaction writes while the backup ends.
 */
export async function countRows(session: PsqlSession, connect: PgConnectOptions): Promise<RowCounts> {
  const superuser = await session.value('SELECT rolname FROM pg_roles WHERE oid = 10');
  const dbs = (await session.query('SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY 1')).map((r) => r[0]);
  const databases: RowCounts['databases'] = {};
  for (const db of dbs) {
    const s = new PsqlSession({ ...connect, dbname: db });
    try {
      databases[db] = await countTables(s);
    } finally {
      await s.close();
    }
  }
  return { superuser, databases };
}

/** The counts a base backup recorded (undefined for backups made before keep recorded them); every chunk authenticated. */
export async function readRowCounts(repo: Unlocked, pool: SealPool, root: Buffer): Promise<RowCounts | undefined> {
  const tree = await new TreeReader(repo).read(root);
  const entry = tree.entries.find((e) => e.type === 'file' && e.name.toString() === ROW_COUNTS_FILE);
  if (!entry) return undefined;
  const parts = await Promise.all(fileChunks(tree, entry).map(async (id) => pool.open(id, await repo.conn.getBlob(id), true)));
  try {
    const parsed = JSON.parse(Buffer.concat(parts).toString('utf8')) as RowCounts;
    if (!parsed || typeof parsed.databases !== 'object' || typeof parsed.superuser !== 'string') throw new Error('not row counts');
    return parsed;
  } catch (e) {
    throw new KeepError('CORRUPT', `the base backup's ${ROW_COUNTS_FILE} is unreadable: ${(e as Error).message}`);
  }
}
