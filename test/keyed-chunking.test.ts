/**
 * Keyed chunking seen from the server's side: a new repository cuts files
 * where only holders of its key can compute (a gear table derived from the
 * master key). The server sees every blob's length; with a public chunker
 * (fastcdc-wasm's table) anyone could cut a guessed file the same way and
 * confirm from those lengths that it was backed up. A repository made before
 * (no `keyed` in config.json) keeps the public table, so its new backups still
 * deduplicate against its old ones.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULT_CHUNKER, HEADER_SIZE, readTrailer, TAG_SIZE } from '@keep/core';
import { get_chunks, seededBytes } from './core/util.js';
import { keepJson, MiB, tempDirs } from './helpers.js';
import { keepdJson } from './keepd-harness.js';

/** The lengths of the data blobs in a repository's packs, as the server knows them, sorted. */
async function storedDataLengths(repo: string): Promise<number[]> {
  const out: number[] = [];
  const packs = path.join(repo, 'packs');
  for (const sub of fs.readdirSync(packs)) {
    for (const f of fs.readdirSync(path.join(packs, sub))) for (const e of await readTrailer(path.join(packs, sub, f))) if (e.type === 0) out.push(e.length);
  }
  return out.sort((a, b) => a - b);
}

describe('keyed chunking, seen from the server', () => {
  const tmp = tempDirs();

  it('two new repositories store one file in differently cut blobs; a repository made before cuts where the public table does', async () => {
    const dir = tmp.make('keep-keyed-');
    const src = path.join(dir, 'src');
    fs.mkdirSync(src);
    // Random bytes are stored raw: each blob is its chunk plus the header, the codec byte and the tag.
    const file = seededBytes('keyed-chunking', 12 * MiB);
    fs.writeFileSync(path.join(src, 'big.bin'), file);
    const overhead = HEADER_SIZE + 1 + TAG_SIZE;

    const backUp = async (name: string, beforeBackup?: (repo: string) => void) => {
      const repo = path.join(dir, name);
      const env = { env: { KEEP_REPO: repo, KEEP_PASSWORD: 'keyed chunking', KEEP_CACHE_DIR: path.join(dir, 'cache') } };
      const init = await keepJson(['init', '--kdf-cost', '12'], env);
      expect(init.chunker).toEqual({ ...DEFAULT_CHUNKER, keyed: true });
      beforeBackup?.(repo);
      await keepJson(['backup', src], env);
      return storedDataLengths(repo);
    };
    const a = await backUp('a');
    const b = await backUp('b');
    expect(a.reduce((s, n) => s + n - overhead, 0)).toBe(file.length);
    expect(a.length).toBeGreaterThan(8);
    expect(a).not.toEqual(b);

    const publicCuts = get_chunks(file, DEFAULT_CHUNKER.min, DEFAULT_CHUNKER.avg, DEFAULT_CHUNKER.max);
    const publicLengths = Array.from(publicCuts.slice(1), (c, i) => c - publicCuts[i] + overhead).sort((x, y) => x - y);
    expect(a).not.toEqual(publicLengths);
    const old = await backUp('old', (repo) => {
      const cfg = JSON.parse(fs.readFileSync(path.join(repo, 'config.json'), 'utf8'));
      delete cfg.chunker.keyed;
      fs.writeFileSync(path.join(repo, 'config.json'), JSON.stringify(cfg));
    });
    expect(old).toEqual(publicLengths);
  });

  it('keepd init makes keyed repositories too (agents derive the table; keepd never holds it)', async () => {
    const data = path.join(tmp.make('keep-keyed-keepd-'), 'data');
    const r = await keepdJson(['init', '--data', data]);
    expect(r.chunker).toEqual({ ...DEFAULT_CHUNKER, keyed: true });
  });
});
