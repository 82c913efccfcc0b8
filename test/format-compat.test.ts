/**
 * On-disk compatibility: an embedded repository written by keep before the
 * restructure (commit 7a6bb9b; test/fixtures/format-compat/manifest.json says
 * how) opens, checks and restores with today's keep, as is and with its
 * rebuildable index.mdb removed. Its snapshot records predate snapshot MACs
 * (snapshot/auth.ts): restore refuses them unless --allow-unauthenticated.
 */
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { keep, keepJson, ROOT, tempDirs } from './helpers.js';

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
  source: string;
  restoredRoot: string;
  snapshots: { id: string; entries: Record<string, Entry> }[];
}
const manifest: Manifest = JSON.parse(fs.readFileSync(path.join(FIXTURE, 'manifest.json'), 'utf8'));

/** What a restored tree holds, in the manifest's terms. */
function describeTree(root: string): Record<string, Entry> {
  const out: Record<string, Entry> = {};
  const walk = (rel: string) => {
    for (const n of fs.readdirSync(path.join(root, rel)).sort()) {
      const r = rel ? `${rel}/${n}` : n;
      const full = path.join(root, r);
      const st = fs.lstatSync(full, { bigint: true });
      const mode = (Number(st.mode) & 0o7777).toString(8);
      if (st.isSymbolicLink()) out[r] = { mtimeNs: st.mtimeNs.toString(), type: 'symlink', target: fs.readlinkSync(full) };
      else if (st.isDirectory()) out[r] = { mode, type: 'dir' };
      else {
        const sha256 = crypto.createHash('sha256').update(fs.readFileSync(full)).digest('hex');
        out[r] = { mode, mtimeNs: st.mtimeNs.toString(), type: 'file', size: Number(st.size), sha256 };
      }
      if (st.isDirectory()) walk(r);
    }
  };
  walk('');
  return out;
}

describe('a repository written before the restructure', () => {
  const tmp = tempDirs();

  for (const index of ['kept', 'removed'] as const) {
    it(`lists, checks and restores every snapshot with index.mdb ${index}`, async () => {
      const dir = tmp.make('keep-compat-');
      execFileSync('tar', ['-xzf', path.join(FIXTURE, 'embedded-7a6bb9b.tar.gz'), '-C', dir]);
      const repo = path.join(dir, 'repo');
      if (index === 'removed') fs.rmSync(path.join(repo, 'index.mdb'));
      const env = { KEEP_REPO: repo, KEEP_PASSWORD: manifest.password };

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
    }, 60_000);
  }
});
