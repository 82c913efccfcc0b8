import { BlobType, byTime, decodeTreePayload, fromHex, Id, judgeSnapshots, KeepError, openBlob, openMeta, resolveSnapshot, Snapshot } from '@keep/core';
import { parse } from '../terminal/args.js';
import { printJson } from '../terminal/output.js';
import { openSink } from '../browse/byte-sink.js';
import { locate, splitSnapshotRef } from '../browse/snapshot-path.js';
import { treeJson } from '../browse/tree-json.js';
import { connect, openRepository, repoLocation, Unlocked } from '../repo/open.js';
import { TreeReader } from '../tree/tree-reader.js';

const USAGE = 'usage: keep cat config | snapshot ID|latest | tree ID|SNAPSHOT[:PATH] | key ID | blob ID   [--source N]';

/**
 * restic's cat, for debugging: repository objects as JSON, decrypted here in
 * the agent (keepd only ever hands over ciphertext). A data blob comes out as
 * its plaintext bytes. The master key is not offered: it never leaves the
 * agent's memory.
 */
export async function catCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parse(argv, { source: { type: 'string' } });
  const [what, ref, ...extra] = positionals;
  if (what === 'masterkey') throw new KeepError('INVALID_ARGUMENT', 'keep does not print the master key (restic\'s `cat masterkey`): it never leaves the agent\'s memory');
  if (what === 'config') {
    if (ref) throw new KeepError('INVALID_ARGUMENT', USAGE);
    // plaintext already: no passphrase needed
    const conn = await connect(repoLocation());
    try {
      return printJson(await conn.config());
    } finally {
      await conn.close();
    }
  }
  if (!['snapshot', 'tree', 'key', 'blob'].includes(what) || !ref || extra.length) throw new KeepError('INVALID_ARGUMENT', USAGE);
  const repo = await openRepository();
  try {
    if (what === 'snapshot') return printJson(openedSnapshot(repo, await findSnapshot(repo, ref, values.source)));
    if (what === 'key') return printJson(await findKey(repo, ref));
    if (what === 'tree') return await catTree(repo, ref, values.source);
    await catBlob(repo, fromHex(ref));
  } finally {
    await repo.conn.close();
  }
}

/** ID (a prefix) or latest, as recorded; a record that fails authentication is shown with a warning (that is what one debugs). */
async function findSnapshot(repo: Unlocked, ref: string, source: string | undefined): Promise<Snapshot> {
  const list = await repo.conn.snapshots(source ? { source } : {});
  const judged = judgeSnapshots(repo.keys.snapshotMacKey, [...list].sort(byTime));
  const s = resolveSnapshot(judged.map((j) => j.snapshot), ref);
  const { auth } = judged.find((j) => j.snapshot === s)!;
  if (auth.state === 'forged') process.stderr.write(`keep: warning: snapshot ${s.id.slice(0, 8)} FAILED authentication: ${auth.reason}\n`);
  if (auth.state === 'unauthenticated') process.stderr.write(`keep: warning: snapshot ${s.id.slice(0, 8)} has no MAC (written before snapshot records were authenticated)\n`);
  return s;
}

/** The record as stored, with its sealed part (paths, username) opened beside it. */
function openedSnapshot(repo: Unlocked, s: Snapshot) {
  const meta = openMeta(repo.keys, s);
  if (!meta) process.stderr.write(`keep: warning: snapshot ${s.id.slice(0, 8)}: its sealed paths and username do not open\n`);
  return { ...s, ...(meta ?? {}) };
}

/** A key file (the master key wrapped by one passphrase), by id or prefix. */
async function findKey(repo: Unlocked, ref: string) {
  const hits = (await repo.conn.keyFiles()).filter((f) => f.id.startsWith(ref));
  if (hits.length === 0) throw new KeepError('NOT_FOUND', `no key ${ref} (see keep key list)`);
  if (hits.length > 1) throw new KeepError('INVALID_ARGUMENT', `key prefix ${ref} is ambiguous (${hits.length} match)`);
  return hits[0];
}

/** A tree by its 64-digit id, or a snapshot's root or directory: SNAPSHOT[:PATH]. */
async function catTree(repo: Unlocked, ref: string, source: string | undefined): Promise<void> {
  const trees = new TreeReader(repo);
  let id: Id;
  if (/^[0-9a-f]{64}$/.test(ref)) id = fromHex(ref);
  else {
    const { snapshot, path } = splitSnapshotRef(ref);
    const snap = await findSnapshot(repo, snapshot, source);
    repo.conn.readAs(snap.source);
    const at = await locate(trees, Buffer.from(snap.root, 'hex'), path ?? '/');
    if (!at.tree) throw new KeepError('INVALID_ARGUMENT', `${at.path} is a ${at.entry!.type}, not a directory`);
    id = at.tree;
  }
  printJson(treeJson(id, await trees.read(id)));
}

/** Any blob by id: a tree as JSON, file data as its bytes. */
async function catBlob(repo: Unlocked, id: Id): Promise<void> {
  const { type, edges, plaintext } = openBlob(repo.keys, id, await repo.conn.getBlob(id));
  if (type === BlobType.Tree) return printJson(treeJson(id, decodeTreePayload(plaintext, edges)));
  const out = openSink(undefined);
  await out.write(plaintext);
  await out.close();
}
