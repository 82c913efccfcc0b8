/**
 * What a hostile keepd (or anyone with its data directory) can do to snapshot
 * records without the key: write, edit or copy `snapshots/<id>.json` and the
 * LMDB cache of them (index.mdb, table "snapshots"). Only while no process
 * holds the repository open.
 */
import fs from 'node:fs';
import path from 'node:path';
import { open } from 'lmdb';

export type SnapshotRecord = Record<string, any>;

export function readRecord(data: string, id: string): SnapshotRecord {
  return JSON.parse(fs.readFileSync(path.join(data, 'snapshots', `${id}.json`), 'utf8'));
}

/** Write (or overwrite) the record `rec.id` in both places the repository keeps it. */
export async function writeRecord(data: string, rec: SnapshotRecord): Promise<void> {
  fs.writeFileSync(path.join(data, 'snapshots', `${rec.id}.json`), JSON.stringify(rec) + '\n');
  const env = open({ path: path.join(data, 'index.mdb'), noSubdir: true, compression: false });
  try {
    await env.openDB({ name: 'snapshots' }).put(rec.id, rec);
  } finally {
    await env.close();
  }
}

/** Remove the record `id` from both places. */
export async function removeRecord(data: string, id: string): Promise<void> {
  fs.rmSync(path.join(data, 'snapshots', `${id}.json`), { force: true });
  const env = open({ path: path.join(data, 'index.mdb'), noSubdir: true, compression: false });
  try {
    await env.openDB({ name: 'snapshots' }).remove(id);
  } finally {
    await env.close();
  }
}

/** A made-up 32-hex-digit snapshot id, its first 8 digits distinct for each n < 256. */
export function newId(n: number): string {
  return n.toString(16).padStart(2, '0').repeat(16);
}
