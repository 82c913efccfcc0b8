/**
 * Gathered pack appends on a full disk (a real 24 MiB tmpfs; skipped with the
 * reason where mount is not permitted): an append that fails drops the blobs
 * gathered since the pack's last write, from the pack and from the writer, so
 * a blob taken before the failure is stored again when it comes again, and the
 * finished pack holds only whole blobs.
 */
import crypto from 'node:crypto';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { chunkId, deriveKeys, KeepError, newMasterKey, PACK_APPEND_BYTES, Repository, sealData } from '@keep/core';
import { seededBytes, tempDir } from './util.js';

const t = tempDir('pack-full');
const mnt = path.join(t.dir, 'mnt');
fs.mkdirSync(mnt);
let skip: string | false = false;
try {
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=24m', 'tmpfs', mnt], { stdio: 'pipe' });
} catch (e) {
  skip = `cannot mount a tmpfs here (${String((e as { stderr?: Buffer }).stderr ?? e).trim()})`;
  console.warn(`pack append full-disk test skipped: ${skip}`);
}

afterAll(() => {
  if (!skip) execFileSync('umount', ['-l', mnt]);
  t.cleanup();
});

const keys = deriveKeys(newMasterKey());
const salt = crypto.randomBytes(16);
const blob = (seed: string) => {
  const plain = seededBytes(seed, 4000);
  const id = chunkId(keys, plain);
  return { id, stored: sealData(keys, salt, id, plain, 'none') };
};

describe.skipIf(skip)('gathered pack appends on a full disk', () => {
  it('a failed append drops the gathered blobs from the pack and the writer; they are stored again when they come again', async () => {
    const repo = await Repository.init(path.join(mnt, 'repo'));
    try {
      const w = repo.openWriter();
      const first = blob('taken before the disk filled');
      expect(await w.add(first.id, first.stored)).toBe(true);
      // Something else takes the rest of the disk; the gathered blobs reach it at the next append.
      const filler = path.join(mnt, 'filler');
      const fd = fs.openSync(filler, 'w');
      try {
        for (;;) fs.writeSync(fd, Buffer.alloc(64 * 1024));
      } catch (e) {
        expect((e as NodeJS.ErrnoException).code).toBe('ENOSPC');
      } finally {
        fs.closeSync(fd);
      }
      let failed: unknown;
      const sent: ReturnType<typeof blob>[] = [];
      for (let i = 0; i < (2 * PACK_APPEND_BYTES) / 4000 && !failed; i++) {
        const b = blob(`gathered ${i}`);
        sent.push(b);
        await w.add(b.id, b.stored).catch((e: unknown) => (failed = e));
      }
      expect(failed).toBeInstanceOf(KeepError);
      expect((failed as KeepError).code).toBe('RESOURCE_EXHAUSTED');

      fs.rmSync(filler);
      // Dropped: not "already stored" now, but stored again.
      expect(await w.add(first.id, first.stored)).toBe(true);
      await w.flush();
      expect(repo.has(first.id)).toBe(true);
      expect((await repo.readBlob(first.id)).equals(first.stored)).toBe(true);
      expect(sent.filter((b) => repo.has(b.id))).toEqual([]);
      const rep = await repo.check({ readData: true });
      expect(rep.ok, rep.errors.join('\n')).toBe(true);
    } finally {
      await repo.close();
    }
  }, 60_000);
});
