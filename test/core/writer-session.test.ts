import crypto from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { chunkId, deriveKeys, emptyStats, ManualClock, newMasterKey, Repository, sealData, sealTree, SessionRepository, toHex, TreeBuilder, WriterSession } from '@keep/core';
import { expectKeepError, seededBytes, tempDir } from './util.js';

const keys = deriveKeys(newMasterKey());
const salt = crypto.randomBytes(16);

/** A real tree of one file of one chunk: the blobs to store and the root. */
function oneFileTree() {
  const plain = seededBytes('wal', 4000);
  const id = chunkId(keys, plain);
  const data = { id, stored: sealData(keys, salt, id, plain, 'low') };
  const b = new TreeBuilder();
  b.addFile({ name: Buffer.from('seg'), type: 'file', mode: 0o600, uid: 0, gid: 0, mtime: [1700000000, 0], ctime: [1700000000, 0], ino: 1, dev: 1, nlink: 1, size: 4000 }, [id]);
  const t = b.build();
  const root = sealTree(keys, salt, t.edges, t.payload, 'medium');
  return { data, root: { id: root.id, stored: root.bytes } };
}

describe('WriterSession: disk syncs of a session', () => {
  let t: ReturnType<typeof tempDir>;
  let repo: Repository;
  const clock = new ManualClock(Date.parse('2026-03-05T00:00:00Z'));
  /** LMDB's last committed transaction of the index: each commit is one disk sync */
  let lastTxn: () => number;

  beforeEach(async () => {
    t = tempDir('session');
    repo = await Repository.init(t.dir, { clock });
    const probe = repo.indexDatabase('txn-probe');
    lastTxn = () => (probe.getStats() as { lastTxnId: number }).lastTxnId;
  });
  afterEach(async () => {
    await repo.close();
    t.cleanup();
  });

  const owner = { source: 'pg', host: 'db1' };
  const ids = () => repo.liveSessions().map((s) => s.id);

  /** The repository, with the session record's write held until `release()`: a slow disk sync at open. */
  function slowRecords() {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const wrapped: SessionRepository = {
      clock: repo.clock,
      openWriter: (o) => repo.openWriter(o),
      registerSession: (id, rec) => gate.then(() => repo.registerSession(id, rec)),
      renewSession: (id, until) => repo.renewSession(id, until),
      endSession: (id) => repo.endSession(id),
      endSessionNow: (id) => repo.endSessionNow(id),
      commitSnapshot: (s, o) => repo.commitSnapshot(s, o),
    };
    return { wrapped, release };
  }
  const settled = async (p: Promise<unknown>) => (await Promise.race([p.then(() => true), new Promise((r) => setTimeout(r, 200)).then(() => false)]));

  it('recordInBackground: open answers before the record is written, the commit waits for it; a session with a parent is recorded first', async () => {
    const slow = slowRecords();
    const s = await WriterSession.open(slow.wrapped, owner, undefined, undefined, { recordInBackground: true });
    expect(ids()).toEqual([]);
    const { data, root } = oneFileTree();
    await s.writer.add(data.id, data.stored);
    await s.writer.add(root.id, root.stored);
    await s.flush();
    const committing = s.commitSnapshot({ ...owner, time: new Date(clock.now()).toISOString(), root: toHex(root.id), tags: [], stats: emptyStats() });
    expect(await settled(committing)).toBe(false);
    slow.release();
    const snap = await committing;
    expect(repo.getSnapshot(snap.id)).toBeDefined();
    expect(ids()).toEqual([]); // written, then removed with the snapshot: no record outlives the session

    const slower = slowRecords();
    const opening = WriterSession.open(slower.wrapped, { ...owner, parent: snap.id }, undefined, undefined, { recordInBackground: true });
    expect(await settled(opening)).toBe(false); // forget in any process must see the parent protected before the answer
    slower.release();
    const child = await opening;
    expect(ids()).toEqual([child.id]);
    await child.end();
    expect(ids()).toEqual([]);
  });

  it('a commit publishes the snapshot, its complete marks and the session end in one index transaction; the lease is not recorded again after it', async () => {
    const s = await WriterSession.open(repo, owner);
    const { data, root } = oneFileTree();
    await s.writer.add(data.id, data.stored);
    await s.writer.add(root.id, root.stored);
    await s.flush();
    expect(ids()).toEqual([s.id]);

    const before = lastTxn();
    const snap = await s.commitSnapshot({ ...owner, time: new Date(clock.now()).toISOString(), root: toHex(root.id), tags: [], stats: emptyStats() });
    expect(lastTxn()).toBe(before + 1);
    expect(repo.getSnapshot(snap.id)?.root).toBe(toHex(root.id));
    expect(repo.isComplete(root.id)).toBe(true);
    expect(ids()).toEqual([]);
    await s.recordLease(); // a sweep racing the commit
    await s.end();
    expect(ids()).toEqual([]);
  });

  it('a refused commit leaves the session open and recorded', async () => {
    const s = await WriterSession.open(repo, owner);
    const { root } = oneFileTree();
    await s.writer.add(root.id, root.stored);
    await s.flush();
    await expectKeepError(() => s.commitSnapshot({ ...owner, time: new Date(clock.now()).toISOString(), root: toHex(root.id), tags: [], stats: emptyStats() }), 'INCOMPLETE');
    expect(ids()).toEqual([s.id]);
    await s.recordLease();
    expect(ids()).toEqual([s.id]);
    await s.end();
    expect(ids()).toEqual([]);
  });
});
