/**
 * keepd stores only ciphertext: after a backup over gRPC (compression off,
 * so compression cannot be what hides the content), no file in keepd's data
 * directory, nor keepd's log, holds a file's content or its name.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compareTrees, restoredPath, tempDirs } from './helpers.js';
import { agentEnv, allFiles, createToken, filesContaining, Keepd, keepdInit, keepJson, killAllKeepd, packBytes, runKeep, startKeepd } from './keepd-harness.js';

const MARKER = 'PLAINTEXT-MARKER-';
const BIG_CONTENT = MARKER.repeat(10_000);
const BIG_NAME = 'secret-name-4242.txt';
const SMALL_CONTENT = 'tiny-secret-content-Zq81x';
const SMALL_NAME = 'private-notes-9931.cfg';
const DIR_NAME = 'confidential-dir-5150';
const LINK_TARGET = 'hidden-link-target-7777';

describe('keepd sees only ciphertext', () => {
  const tmp = tempDirs();
  let dir: string;
  let data: string;
  let src: string;
  let keepd: Keepd;
  let env: Record<string, string | undefined>;
  let snapshot: string;

  beforeAll(async () => {
    dir = tmp.make('keep-grpc-cipher-');
    data = path.join(dir, 'data');
    src = path.join(dir, 'src');
    fs.mkdirSync(path.join(src, DIR_NAME), { recursive: true });
    fs.writeFileSync(path.join(src, BIG_NAME), BIG_CONTENT);
    fs.writeFileSync(path.join(src, DIR_NAME, SMALL_NAME), SMALL_CONTENT);
    fs.symlinkSync(LINK_TARGET, path.join(src, 'link'));
    await keepdInit(data);
    const agent = await createToken(data, 'agent', { sources: ['secrets'] });
    keepd = await startKeepd(data, { env: { KEEP_LOG_LEVEL: 'debug' } });
    env = agentEnv(keepd, agent.token);
    await keepJson(['init', '--kdf-cost', '12'], env);
    snapshot = (await keepJson(['backup', src, '--source', 'secrets', '--compression', 'none'], env)).snapshot;
  });

  afterAll(killAllKeepd);

  it('no file of the data directory holds a file content or name; the snapshot still restores', async () => {
    // Drained and stopped: everything keepd will ever write for this backup is on disk.
    expect(await keepd.stop()).toEqual({ code: 0, signal: null });
    const files = allFiles(data);
    expect(files.some((f) => f.endsWith('.pack'))).toBe(true);
    // Uncompressed: the packs are at least as large as the content (so only encryption can hide it).
    expect(packBytes(data)).toBeGreaterThan(BIG_CONTENT.length);

    // The search itself works: it finds what is stored in the clear (a snapshot record names its source and id).
    expect(filesContaining(data, `"source":"secrets"`).length).toBeGreaterThan(0);
    expect(filesContaining(data, snapshot).length).toBeGreaterThan(0);

    for (const needle of [MARKER, BIG_NAME, 'secret-name-4242', SMALL_CONTENT, SMALL_NAME, DIR_NAME, LINK_TARGET]) {
      expect(filesContaining(data, needle), `${needle} found in the clear`).toEqual([]);
      expect(filesContaining(data, Buffer.from(needle, 'utf16le')), `${needle} (UTF-16) found`).toEqual([]);
    }
    // Nor in keepd's own log.
    for (const needle of [MARKER, BIG_NAME, SMALL_CONTENT, SMALL_NAME, DIR_NAME]) expect(keepd.output()).not.toContain(needle);

    // The key opens it all again (through the data dir as a local repository).
    const target = path.join(dir, 'restore');
    const r = await runKeep(['restore', 'latest', '--source', 'secrets', '--target', target], { KEEP_REPO: data, KEEP_PASSWORD: env.KEEP_PASSWORD });
    expect(r.code, r.stderr).toBe(0);
    expect(fs.readFileSync(path.join(restoredPath(target, src), BIG_NAME), 'utf8')).toBe(BIG_CONTENT);
    expect(compareTrees(src, restoredPath(target, src))).toEqual([]);
  });
});
