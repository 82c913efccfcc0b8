/**
 * What a restore leaves in the target (issue 13): a file that fails midway
 * (a later chunk damaged) is not left truncated under its name, and the error
 * names it; a sparse file comes back sparse (its all-zero blocks are holes).
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { errorLine, flipByte, initRepo, keep, keepJson, MiB, packBlobs, packFiles, prng, restoredPath, sha256, tempDirs } from './helpers.js';

const tmp = tempDirs();

/** Every name below `dir`, recursively (relative). */
function names(dir: string): string[] {
  return fs.readdirSync(dir, { recursive: true }) as string[];
}

describe('restore leaves no half-written file', () => {
  it('a large file whose later chunk is damaged is not left truncated under its name; the error names it', async () => {
    const base = tmp.make('keep-halfway-');
    const { repo, env } = await initRepo(base);
    const src = path.join(base, 'src');
    fs.mkdirSync(src);
    fs.writeFileSync(path.join(src, 'big.bin'), prng(7, 12 * MiB));
    await keepJson(['backup', src], { env });

    // big.bin's chunks went into the pack in order: damage the one written last (its last chunk).
    const chunks = packFiles(repo)
      .flatMap((f) => packBlobs(f))
      .filter((b) => b.type === 0 && b.length > 64 * 1024);
    expect(chunks.length).toBeGreaterThan(3);
    const inPack = chunks.filter((c) => c.pack === chunks[0].pack);
    const victim = inPack.sort((a, b) => b.offset - a.offset)[0];
    flipByte(victim.pack, victim.offset + Math.floor(victim.length / 2));

    const target = tmp.make('keep-halfway-out-');
    const r = await keep(['restore', 'latest', '--target', target], { env });
    expect(r.code).toBe(4);
    const dir = path.dirname(restoredPath(target, path.join(src, 'big.bin')));
    expect(fs.existsSync(path.join(dir, 'big.bin')), 'a truncated big.bin was left').toBe(false);
    expect(names(target).filter((n) => path.basename(n).startsWith('.keep-partial-'))).toEqual([]);
    const line = errorLine(r);
    expect(line).toContain(`${src}/big.bin`);
    expect(line).toContain(victim.id);
  });
});

describe('sparse files', () => {
  it('restore keeps holes: the restored file allocates about what the original did', async () => {
    const base = tmp.make('keep-sparse-');
    const { env } = await initRepo(base);
    const src = path.join(base, 'src');
    fs.mkdirSync(src);
    const file = path.join(src, 'disk.img');
    // 64 MiB, of which 3 pieces of data (at the start, in the middle, at the end); the rest holes
    const fd = fs.openSync(file, 'w');
    fs.ftruncateSync(fd, 64 * MiB);
    for (const at of [0, 32 * MiB + 12345, 64 * MiB - 5000]) fs.writeSync(fd, prng(at, 5000), 0, 5000, at);
    fs.closeSync(fd);
    const original = fs.statSync(file);
    expect(original.blocks * 512).toBeLessThan(1 * MiB); // (the file system keeps holes)

    await keepJson(['backup', src], { env });
    const target = tmp.make('keep-sparse-out-');
    const r = await keep(['restore', 'latest', '--target', target], { env });
    expect(r.code, r.stderr).toBe(0);
    const restored = restoredPath(target, file);
    const st = fs.statSync(restored);
    expect(st.size).toBe(64 * MiB);
    expect(sha256(fs.readFileSync(restored))).toBe(sha256(fs.readFileSync(file)));
    // chunk boundaries may write a partial block of zeros each: a little above the original, far below 64 MiB
    expect(st.blocks * 512, `restored allocates ${st.blocks * 512} bytes, the original ${original.blocks * 512}`).toBeLessThan(original.blocks * 512 + 1 * MiB);
  });
});
