import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Repository } from '@keep/core';
import { tempDir } from './util.js';

/** Opens of one repository in one process share one LMDB environment (lmdb-shared-env.ts; the deadlock it prevents: test/lmdb-one-env.test.ts). */
describe('shared LMDB environment of a repository', () => {
  let t: ReturnType<typeof tempDir>;
  beforeEach(() => {
    t = tempDir('shared-env');
  });
  afterEach(() => t.cleanup());

  it('is closed with its last user: closing one open leaves the other reading and writing', async () => {
    const a = await Repository.init(t.dir);
    const b = await Repository.open(t.dir);
    await a.indexDatabase<number>('probe').put('k', 1);
    expect(b.indexDatabase<number>('probe').get('k')).toBe(1);
    await a.close();
    await a.close(); // a second close of one open gives nothing back twice
    await b.indexDatabase<number>('probe').put('k', 2);
    expect(b.indexDatabase<number>('probe').get('k')).toBe(2);
    await b.close();
    const c = await Repository.open(t.dir);
    expect(c.indexDatabase<number>('probe').get('k')).toBe(2);
    await c.close();
  });

  it('an index rebuilt in place: a later open maps the new file, not the old one another open still holds', async () => {
    const a = await Repository.init(t.dir);
    const b = await Repository.open(t.dir);
    await a.indexDatabase<number>('probe').put('k', 1); // a server table of the index: a rebuild starts it empty
    await a.rebuildIndex();
    const c = await Repository.open(t.dir);
    expect(c.indexDatabase<number>('probe').get('k')).toBeUndefined();
    expect(a.indexDatabase<number>('probe').get('k')).toBeUndefined();
    expect(b.indexDatabase<number>('probe').get('k')).toBe(1); // the replaced file, until b closes
    await Promise.all([a.close(), b.close(), c.close()]);
  });
});
