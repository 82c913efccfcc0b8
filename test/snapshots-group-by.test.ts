/**
 * Issue 15, snapshots and retention: `keep snapshots --json` carries restic's
 * fields (paths, short_id, username, hostname, tree), the table a Paths
 * column; retention groups by source,paths by default, so a source that backs
 * up /etc and /home separately keeps its only /etc snapshot under
 * `--keep-last 2`. keepd never sees the paths: they travel sealed, and keepd
 * groups by a keyed hash of them. Real keepd over gRPC, real keep processes.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDirs } from './helpers.js';
import { agentEnv, Keepd, keepdJson, keepJson, killAllKeepd, runKeep, Token } from './keepd-harness.js';
import { etcThenHome, keepdWithAdmin } from './retention-fixture.js';

describe('snapshots and forget group by source and paths', () => {
  const tmp = tempDirs();
  let dir: string;
  let data: string;
  let keepd: Keepd;
  let etc: string;
  let home: string;
  const tok: Record<string, Token> = {};
  let etcSnap: string;
  let homeSnaps: string[] = [];

  beforeAll(async () => {
    dir = tmp.make('keep-group-by-');
    const k = await keepdWithAdmin(dir, 'web1');
    ({ data, keepd } = k);
    tok.agent = k.agent;
    tok.admin = k.admin;
    ({ etc, home, etcSnap, homeSnaps } = await etcThenHome(dir, k, 'web1', (i) => [i === 2 ? 'weekly' : 'daily']));
  });

  afterAll(killAllKeepd);

  it('snapshots --json has restic’s fields; the table shows each snapshot’s paths', async () => {
    const list = await keepJson(['snapshots'], agentEnv(keepd, tok.agent.token));
    expect(list).toHaveLength(4);
    const e = list.find((s: any) => s.id === etcSnap);
    expect(e.paths).toEqual([etc]);
    expect(e.short_id).toBe(etcSnap.slice(0, 8));
    expect(e.short_id).toMatch(/^[0-9a-f]{8}$/);
    expect(e.username).toBe(os.userInfo().username);
    expect(e.hostname).toBe(os.hostname());
    expect(e.tree).toMatch(/^[0-9a-f]{64}$/);
    expect(e.auth).toBe('authentic');
    // today's fields stay
    expect(e.source).toBe('web1');
    expect(e.host).toBe(os.hostname());
    for (const id of homeSnaps) expect(list.find((s: any) => s.id === id).paths).toEqual([home]);

    const table = await runKeep(['snapshots'], agentEnv(keepd, tok.agent.token));
    expect(table.code).toBe(0);
    const lines = table.stdout.split('\n');
    expect(lines[0]).toMatch(/\bPaths\b/);
    expect(lines.find((l) => l.startsWith(etcSnap.slice(0, 8)))).toContain(etc);
  });

  it('keepd holds no path in plaintext: only a keyed hash to group by', () => {
    const files = fs.readdirSync(path.join(data, 'snapshots'));
    expect(files).toHaveLength(4);
    const records = files.map((f) => fs.readFileSync(path.join(data, 'snapshots', f), 'utf8'));
    for (const text of records) {
      expect(text).not.toContain(etc);
      expect(text).not.toContain(home);
      expect(text).not.toContain('secret-config-name');
    }
    const byId = Object.fromEntries(records.map((t) => JSON.parse(t)).map((r) => [r.id, r]));
    expect(byId[etcSnap].paths_group).toMatch(/^[0-9a-f]{32}$/);
    expect(byId[homeSnaps[0]].paths_group).toBe(byId[homeSnaps[2]].paths_group);
    expect(byId[homeSnaps[0]].paths_group).not.toBe(byId[etcSnap].paths_group);
  });

  it('snapshots --group-by paths / tags lists the groups restic-shaped', async () => {
    const env = agentEnv(keepd, tok.agent.token);
    const byPaths = await keepJson(['snapshots', '--group-by', 'source,paths'], env);
    expect(byPaths.map((g: any) => g.group_key)).toEqual([
      { source: 'web1', paths: [etc] },
      { source: 'web1', paths: [home] },
    ]);
    expect(byPaths[1].snapshots.map((s: any) => s.id)).toEqual(homeSnaps);
    const byTags = await keepJson(['snapshots', '--group-by', 'tags'], env);
    expect(byTags.map((g: any) => [g.group_key, g.snapshots.length])).toEqual([
      [{ tags: [] }, 1],
      [{ tags: ['daily'] }, 2],
      [{ tags: ['weekly'] }, 1],
    ]);
    const bad = await runKeep(['snapshots', '--group-by', 'colour'], env);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--group-by/);
  });

  it('keepd forget --keep-last 2 keeps the only /etc snapshot (default source,paths); --group-by source loses it', async () => {
    const dry = await keepdJson(['forget', '--data', data, '--keep-last', '2', '--dry-run']);
    expect(dry.group_by).toEqual(['source', 'paths']);
    expect(dry.groups).toHaveLength(2);
    expect(dry.groups.flatMap((g: any) => g.removed)).toEqual([homeSnaps[0]]);
    const etcGroup = dry.groups.find((g: any) => g.snapshots.some((s: any) => s.id === etcSnap));
    expect(etcGroup.snapshots).toEqual([expect.objectContaining({ id: etcSnap, keep: true, reasons: ['last snapshot'] })]);

    // The old grouping, by source alone, takes /etc's only snapshot with it.
    const bySource = await keepdJson(['forget', '--data', data, '--keep-last', '2', '--group-by', 'source', '--dry-run']);
    expect(bySource.groups).toHaveLength(1);
    expect(bySource.groups[0].removed.sort()).toEqual([etcSnap, homeSnaps[0]].sort());

    const real = await keepdJson(['forget', '--data', data, '--keep-last', '2']);
    expect(real.groups.flatMap((g: any) => g.removed)).toEqual([homeSnaps[0]]);
    const left = await keepJson(['snapshots'], agentEnv(keepd, tok.agent.token));
    expect(left.map((s: any) => s.id).sort()).toEqual([etcSnap, homeSnaps[1], homeSnaps[2]].sort());
  });

  it('keepd forget --group-by tags keeps per tag set', async () => {
    const r = await keepdJson(['forget', '--data', data, '--keep-last', '1', '--group-by', 'tags', '--dry-run']);
    expect(r.groups.map((g: any) => g.key)).toEqual([{ tags: [] }, { tags: ['daily'] }, { tags: ['weekly'] }]);
    expect(r.groups.flatMap((g: any) => g.removed)).toEqual([]);
  });
});
