/**
 * On-disk compatibility: repositories written before the restructure (commit
 * 7a6bb9b; each fixture's manifest says how) open, check and restore with
 * today's code: an embedded one as is and with its rebuildable index.mdb
 * removed, a keepd data directory served by today's keepd with its token of
 * then. Their snapshot records predate snapshot MACs (snapshot/auth.ts):
 * restore refuses them unless --allow-unauthenticated.
 */
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { keep, keepJson, ROOT, tempDirs } from './helpers.js';
import { agentEnv, killAllKeepd, startKeepd } from './keepd-harness.js';

const FIXTURE = path.join(ROOT, 'test', 'fixtures', 'format-compat');

interface Entry {
  type: 'file' | 'dir' | 'symlink';
  mode?: string;
  mtimeNs?: string;
  size?: number;
  sha256?: string;
  target?: string;
}
interface Manifest {
  password: string;
  /** keepd's agent token (keepd fixtures) */
  token?: string;
  source: string;
  restoredRoot: string;
  snapshots: { id: string; entries: Record<string, Entry> }[];
}
const manifestOf = (name: string): Manifest => JSON.parse(fs.readFileSync(path.join(FIXTURE, `${name}-manifest.json`), 'utf8'));

/** Unpack fixture `name` into a new temp dir; its top directory's path. */
function unpack(dir: string, name: string, top: string): string {
  execFileSync('tar', ['-xzf', path.join(FIXTURE, `${name}-7a6bb9b.tar.gz`), '-C', dir]);
  return path.join(dir, top);
}

/** What a restored tree holds, in the manifest's terms. */
function describeTree(root: string): Record<string, Entry> {
  const out: Record<string, Entry> = {};
  const walk = (rel: string) => {
    for (const n of fs.readdirSync(path.join(root, rel)).sort()) {
      const r = rel ? `${rel}/${n}` : n;
      const full = path.join(root, r);
      const st = fs.lstatSync(full, { bigint: true });
      const mode = (Number(st.mode) & 0o7777).toString(8);
      // to the microsecond, the precision restore promises (Node 24's utimes lands a double's nanoseconds beyond it)
      const mtimeUs = ((st.mtimeNs / 1000n) * 1000n).toString();
      if (st.isSymbolicLink()) out[r] = { mtimeNs: mtimeUs, type: 'symlink', target: fs.readlinkSync(full) };
      else if (st.isDirectory()) out[r] = { mode, type: 'dir' };
      else {
        const sha256 = crypto.createHash('sha256').update(fs.readFileSync(full)).digest('hex');
        out[r] = { mode, mtimeNs: mtimeUs, type: 'file', size: Number(st.size), sha256 };
      }
      if (st.isDirectory()) walk(r);
    }
  };
  walk('');
  return out;
}

/** `keep snapshots`, `check --read-data`, then every snapshot restored and compared to the manifest. */
async function listCheckRestore(manifest: Manifest, env: Record<string, string | undefined>, dir: string): Promise<void> {
  const listed: { id: string; source: string }[] = await keepJson(['snapshots'], { env });
  expect(listed.map((s) => s.id)).toEqual(manifest.snapshots.map((s) => s.id));
  expect(listed.every((s) => s.source === manifest.source)).toBe(true);

  const check = await keep(['check', '--read-data'], { env });
  expect(check.code, check.stderr).toBe(0);

  const refused = await keep(['restore', 'latest', '--target', path.join(dir, 'refused')], { env });
  expect(refused.code).not.toBe(0);
  expect(refused.stderr).toContain('without a MAC');

  for (const snap of manifest.snapshots) {
    const target = path.join(dir, `restore-${snap.id}`);
    const r = await keep(['restore', snap.id, '--target', target, '--allow-unauthenticated'], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(describeTree(path.join(target, manifest.restoredRoot))).toEqual(snap.entries);
  }
}

describe('a repository written before the restructure', () => {
  const tmp = tempDirs();
  afterAll(killAllKeepd);

  for (const index of ['kept', 'removed'] as const) {
    it(`embedded: lists, checks and restores every snapshot with index.mdb ${index}`, async () => {
      const manifest = manifestOf('embedded');
      const dir = tmp.make('keep-compat-');
      const repo = unpack(dir, 'embedded', 'repo');
      if (index === 'removed') fs.rmSync(path.join(repo, 'index.mdb'));
      await listCheckRestore(manifest, { KEEP_REPO: repo, KEEP_PASSWORD: manifest.password }, dir);
    }, 60_000);
  }

  it('keepd data directory: served by keepd of today over gRPC to the token issued then', async () => {
    const manifest = manifestOf('keepd');
    const dir = tmp.make('keep-compat-keepd-');
    const keepd = await startKeepd(unpack(dir, 'keepd', 'data'));
    await listCheckRestore(manifest, agentEnv(keepd, manifest.token, manifest.password), dir);
    expect(await keepd.stop()).toEqual({ code: 0, signal: null });
  }, 90_000);
});
