/**
 * A zstd bomb from a key holder (issue 13): a data blob of ~33 KB whose frame
 * declares, or holds without declaring, 1 GiB. Restore refuses it without
 * allocating it: decompression is bounded by the repository's max chunk size.
 * The blob is sealed with the repository's key (only a key holder can make one
 * restore opens) and committed in a snapshot through the storage engine; the
 * real `keep restore` then reads it while the test watches its peak RSS.
 */
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { chunkId, deriveKeys, emptyStats, HEADER_SIZE, KeyFile, NONCE_OFFSET, NONCE_SIZE, openMasterKey, Repository, SALT_OFFSET, sealSnapshot, sealTree, toHex, TreeBuilder } from '@keep/core';
import { initRepo, KEEP_BIN, tempDirs } from './helpers.js';

const tmp = tempDirs();
const GiB = 1024 * 1024 * 1024;

/** A zstd frame of `total` zero bytes in RLE blocks (4 bytes per 128 KiB), its size in the header or not. */
function zstdBomb(total: number, declare: boolean): Buffer {
  const BLOCK = 128 * 1024;
  const head = [0x28, 0xb5, 0x2f, 0xfd, declare ? 0xc0 : 0x00, 0x38]; // magic; 8-byte content size or none, not single-segment; window 128 KiB
  const size = Buffer.alloc(declare ? 8 : 0);
  if (declare) size.writeBigUInt64LE(BigInt(total));
  const n = total / BLOCK;
  const blocks = Buffer.alloc(n * 4);
  for (let i = 0; i < n; i++) {
    blocks.writeUIntLE((BLOCK << 3) | (1 << 1) | (i === n - 1 ? 1 : 0), i * 4, 3); // RLE block of BLOCK bytes
    blocks[i * 4 + 3] = 0;
  }
  return Buffer.concat([Buffer.from(head), size, blocks]);
}

/**
 * A blob as seal.ts lays it out (a tree: with no edges), with codec zstd and
 * `frame` as the encoded plaintext. `type`: 0 data, 1 tree (BlobType is a
 * const enum, erased at run time).
 */
function sealFrame(keys: ReturnType<typeof deriveKeys>, id: Buffer, frame: Buffer, type: 0 | 1 = 0): Buffer {
  const salt = crypto.randomBytes(16);
  const h = Buffer.alloc(HEADER_SIZE + (type === 1 ? 4 : 0)); // (a tree's u32 edge count: 0)
  h[0] = 1;
  h[1] = type;
  salt.copy(h, SALT_OFFSET);
  crypto.randomFillSync(h, NONCE_OFFSET, NONCE_SIZE);
  const c = crypto.createCipheriv('aes-256-gcm', keys.sealKey(salt), h.subarray(NONCE_OFFSET, NONCE_OFFSET + NONCE_SIZE));
  c.setAAD(Buffer.concat([id, h]));
  const body = Buffer.concat([c.update(Buffer.of(1)), c.update(frame), c.final()]);
  return Buffer.concat([h, body, c.getAuthTag()]);
}

/** Commit a snapshot of source `source` whose root tree is the bomb, or holds one file `bomb.bin` whose only chunk is. */
async function plantBomb(repoDir: string, password: string, source: string, frame: Buffer, inTree = false): Promise<void> {
  const repo = await Repository.open(repoDir);
  try {
    const keys = deriveKeys(openMasterKey(repo.keyFiles() as KeyFile[], password).master);
    const id = chunkId(keys, Buffer.from(`looks innocent ${source}`));
    const stored = sealFrame(keys, id, frame, inTree ? 1 : 0);
    expect(stored.length).toBeLessThan(40_000);
    const w = repo.openWriter();
    await w.add(id, stored);
    let root = id;
    if (!inTree) {
      const b = new TreeBuilder();
      b.addFile({ name: Buffer.from('bomb.bin'), type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: [1700000000, 0], ctime: [1700000000, 0], ino: 1, dev: 1, nlink: 1, size: GiB }, [id]);
      const { edges, payload } = b.build();
      const tree = sealTree(keys, crypto.randomBytes(16), edges, payload, 'none');
      await w.add(tree.id, tree.bytes);
      root = tree.id;
    }
    await w.flush();
    // A key holder's snapshot, authenticated like any agent's (the bomb comes from inside the trust boundary).
    await repo.commitSnapshot(sealSnapshot(keys.snapshotMacKey, { source, host: 'attacker', time: new Date().toISOString(), root: toHex(root), tags: [], stats: emptyStats() }));
  } finally {
    await repo.close();
  }
}

/** Run `keep ARGS`; its exit code, stderr and the peak RSS (VmHWM) seen while it ran. */
function runWatched(args: string[], env: Record<string, string>): Promise<{ code: number | null; stderr: string; peakBytes: number }> {
  return new Promise((resolve) => {
    const child = spawn(KEEP_BIN, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    let peak = 0;
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    const poll = setInterval(() => {
      try {
        const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${child.pid}/status`, 'utf8'));
        if (m) peak = Math.max(peak, Number(m[1]) * 1024);
      } catch {
        // exited
      }
    }, 10);
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.on('close', (code) => {
      clearInterval(poll);
      clearTimeout(timer);
      resolve({ code, stderr, peakBytes: peak });
    });
  });
}

describe('decompression bombs', () => {
  it('a data or tree blob declaring or holding 1 GiB is refused without allocating it (bounded by the max chunk size, or the tree bound)', async () => {
    const base = tmp.make('keep-bomb-');
    const password = 'bomb test passphrase';
    const { repo, env } = await initRepo(base, password);
    await plantBomb(repo, password, 'declared', zstdBomb(GiB, true));
    await plantBomb(repo, password, 'undeclared', zstdBomb(GiB, false));
    // a tree node's bound is MAX_TREE_PLAINTEXT (256 MiB), not the max chunk size
    await plantBomb(repo, password, 'tree-declared', zstdBomb(GiB, true), true);
    await plantBomb(repo, password, 'tree-undeclared', zstdBomb(GiB, false), true);
    for (const source of ['declared', 'undeclared', 'tree-declared', 'tree-undeclared']) {
      const target = path.join(base, `out-${source}`);
      const r = await runWatched(['restore', 'latest', '--source', source, '--target', target], env);
      expect(r.code, r.stderr).toBe(4);
      expect(r.stderr).toMatch(/decompression bomb/);
      expect(r.peakBytes, `peak RSS ${r.peakBytes}`).toBeGreaterThan(0);
      expect(r.peakBytes).toBeLessThan(500 * 1024 * 1024);
      // nothing of the bomb under its name
      const left = path.join(target, 'bomb.bin');
      expect(fs.existsSync(left) ? fs.statSync(left).size : 0).toBe(0);
    }
  });
});
