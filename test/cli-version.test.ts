/**
 * keep version / --version and keepd version / --version: the package's
 * version, the repository format versions it reads and writes, Node and the
 * platform (restic's `version`), text or --json; no repository needed.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from './helpers.js';
import { runKeep, runKeepd } from './keepd-harness.js';

const pkgVersion = (dir: string): string => JSON.parse(fs.readFileSync(path.join(ROOT, dir, 'package.json'), 'utf8')).version;

describe('version', () => {
  it.each([
    ['keep', 'agent'],
    ['keepd', 'server'],
  ])('%s version and --version', async (bin, dir) => {
    const run = bin === 'keep' ? (argv: string[]) => runKeep(argv, { KEEP_REPO: '/nonexistent/repo' }) : (argv: string[]) => runKeepd(argv);
    const version = pkgVersion(dir);
    for (const argv of [['version'], ['--version']]) {
      const r = await run(argv);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toBe(
        `${bin} ${version} running on node ${process.version} on ${process.platform}/${process.arch}\n` +
          'repository formats: config 1, key 1, pack 1, blob 1, index blobs-v3 (reads index blobs, blobs-v2, blobs-v3)\n',
      );
    }
    for (const argv of [['version', '--json'], ['--version', '--json']]) {
      const r = await run(argv);
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout)).toEqual({
        program: bin,
        version,
        formats: { config: 1, key: 1, pack: 1, blob: 1, index: 'blobs-v3' },
        reads_index: ['blobs', 'blobs-v2', 'blobs-v3'],
        node: process.version,
        platform: process.platform,
        arch: process.arch,
      });
    }
  });
});
