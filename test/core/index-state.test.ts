/**
 * The index is a cache, the server's state is not (issue 13, item 4): the
 * meta-page check that runs before LMDB maps index.mdb, and state.mdb, which
 * takes over the tables an earlier version kept in index.mdb and survives
 * every rebuild. Real LMDB files.
 */
import fs from 'node:fs';
import path from 'node:path';
import { open as openLmdb } from 'lmdb';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { checkLmdbFile, ManualClock, Repository } from '@keep/core';
import { tempDir } from './util.js';

describe('index.mdb and state.mdb', () => {
  let t: ReturnType<typeof tempDir>;
  const clock = new ManualClock(Date.parse('2026-03-01T00:00:00Z'));
  const index = () => path.join(t.dir, 'index.mdb');

  beforeEach(async () => {
    t = tempDir('index-state');
    await (await Repository.init(t.dir, { clock })).close();
  });
  afterEach(() => t.cleanup());

  it('the meta-page check passes a healthy index and names zeroed meta pages, truncation and a missing file', () => {
    expect(checkLmdbFile(index())).toEqual({ kind: 'ok' });
    expect(checkLmdbFile(path.join(t.dir, 'nope.mdb'))).toEqual({ kind: 'missing' });
    const healthy = fs.readFileSync(index());

    const fd = fs.openSync(index(), 'r+');
    fs.writeSync(fd, Buffer.alloc(4096), 0, 4096, 4096); // meta page 1 only
    fs.closeSync(fd);
    expect(checkLmdbFile(index())).toEqual({ kind: 'damaged', reason: 'meta page 1 names another page' });

    fs.writeFileSync(index(), healthy.subarray(0, healthy.length - 4096));
    expect(checkLmdbFile(index())).toMatchObject({ kind: 'damaged', reason: expect.stringMatching(/^the file is truncated/) });

    fs.writeFileSync(index(), Buffer.alloc(healthy.length));
    expect(checkLmdbFile(index())).toEqual({ kind: 'damaged', reason: 'page 0 is not a meta page' });
  });

  it('a damaged index fails open with the hint when one is given, and is rebuilt aside when not', async () => {
    fs.writeFileSync(index(), Buffer.alloc(8192));
    await expect(Repository.open(t.dir, { clock, indexRepairHint: 'run the cure' })).rejects.toThrow(/index\.mdb is damaged \(page 0 is not a meta page\): run the cure$/);
    const repo = await Repository.open(t.dir, { clock });
    await repo.close();
    expect(checkLmdbFile(index())).toEqual({ kind: 'ok' });
    expect(fs.readdirSync(t.dir).filter((n) => n.startsWith('index.mdb.damaged-'))).toHaveLength(1);
  });

  it("server tables an earlier version kept in index.mdb move to state.mdb on open, leave the index, and survive rebuilds", async () => {
    // What keepd before state.mdb wrote: its tables inside the index.
    const env = openLmdb({ path: index(), noSubdir: true, compression: false });
    await env.openDB({ name: 'tokens' }).put('0123456789abcdef', { id: '0123456789abcdef', role: 'admin', hash: 'h' });
    await env.openDB({ name: 'source-tags' }).put('a', 1);
    await env.close();
    expect(fs.existsSync(path.join(t.dir, 'state.mdb'))).toBe(false);

    let repo = await Repository.open(t.dir, { clock });
    expect(repo.database('tokens').get('0123456789abcdef')).toMatchObject({ role: 'admin' });
    expect(repo.database('source-tags').get('a')).toBe(1);
    await repo.rebuildIndex();
    expect(repo.database('tokens').getCount()).toBe(1);
    await repo.close();

    // The index no longer holds them (a lost state.mdb never comes back with stale records)...
    const after = openLmdb({ path: index(), noSubdir: true, compression: false });
    expect(after.openDB({ name: 'tokens', create: false } as unknown as { name: string })?.getCount() ?? 0).toBe(0);
    await after.close();
    // ...and deleting the index loses none of them.
    fs.rmSync(index());
    repo = await Repository.open(t.dir, { clock });
    expect(repo.database('tokens').get('0123456789abcdef')).toMatchObject({ role: 'admin' });
    await repo.close();
  });
});
