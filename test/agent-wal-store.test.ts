/**
 * How the resident agent stores WAL (agent/src/pg/wal-store.ts and
 * service/wal-catalog.ts), with a real keepd and a real `keep agent run`, no
 * PostgreSQL needed: segments are synthetic files in a pg_wal directory.
 * A segment is cut in fixed 1 MiB chunks (its zero-filled tail stored once),
 * reads back byte for byte through wal-fetch, and the agent's catalog of
 * archived names never answers from memory for a name it has seen: the same
 * content again is "already" (found by a fresh listing), different content
 * under that name is refused.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, agentConfigYaml, killAllAgents } from './agent-harness.js';
import { MiB, tempDirs } from './helpers.js';
import { Keepd, keepdJson, killAllKeepd, runKeep } from './keepd-harness.js';
import { keepdForPostgres } from './pg-cluster.js';

const SEGMENT = 16 * MiB;

/** A segment of `random` MiB of noise, zero-filled after (what a switched segment looks like). */
function segment(random: number): Buffer {
  const b = Buffer.alloc(SEGMENT);
  crypto.randomFillSync(b, 0, random * MiB);
  return b;
}

describe('WAL stored by the resident agent (real keepd, real agent)', () => {
  const tmp = tempDirs();
  let dir: string;
  let keepd: Keepd;
  let env: Record<string, string>;
  let agent: Agent;
  let socket: string;
  let pgWal: string;

  beforeAll(async () => {
    dir = tmp.make('keep-agent-wal-');
    const k = await keepdForPostgres(dir, 'agent wal passphrase', ['db']);
    keepd = k.keepd;
    env = k.envFor('db');
    const init = await runKeep(['init', '--kdf-cost', '12', '--json'], env);
    expect(init.code, init.stderr).toBe(0);
    const pgdata = path.join(dir, 'pgdata');
    pgWal = path.join(pgdata, 'pg_wal');
    fs.mkdirSync(pgWal, { recursive: true });
    fs.writeFileSync(path.join(pgdata, 'PG_VERSION'), '16\n');
    const cfg = path.join(dir, 'agent.yaml');
    socket = path.join(dir, 'state', 'agent.sock');
    fs.writeFileSync(
      cfg,
      agentConfigYaml(
        keepd.url,
        env,
        path.join(dir, 'state'),
        `  - type: postgres
    name: db
    pgdata: ${pgdata}
    schedule: { every: 24h }
`,
      ),
    );
    agent = new Agent(['--config', cfg]);
    const until = Date.now() + 60_000;
    while (!fs.existsSync(socket) && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
  });

  afterAll(async () => {
    killAllAgents();
    await killAllKeepd();
  });

  const push = (file: string) => runKeep(['pg', 'wal-push', '--source', 'db', '--socket', socket, '--json', file], {});

  it('stores a segment in fixed 1 MiB chunks (the zero tail once) and wal-fetch reads it back', async () => {
    const name = '000000010000000000000001';
    const data = segment(3);
    fs.writeFileSync(path.join(pgWal, name), data);
    const r = await push(path.join(pgWal, name));
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j).toMatchObject({ via: 'agent', already: false, bytes: SEGMENT });
    expect(Object.keys(j.stages_ms)).toEqual(['opened', 'session', 'chunks', 'stored', 'listed', 'committed']);
    const tree = await runKeep(['cat', 'tree', j.snapshot], env);
    expect(tree.code, tree.stderr).toBe(0);
    const file = (JSON.parse(tree.stdout).entries as { name: string; content: string[] }[]).find((n) => n.name === name)!;
    // sixteen 1 MiB chunks: three of noise, thirteen times the one of zeros (content-defined chunking cut other sizes)
    expect(file.content).toHaveLength(16);
    expect(new Set(file.content).size).toBe(4);
    const back = path.join(dir, 'fetched');
    const f = await runKeep(['pg', 'wal-fetch', '--source', 'db', name, back], env);
    expect(f.code, f.stderr).toBe(0);
    expect(fs.readFileSync(back).equals(data)).toBe(true);
  });

  it('answers a name it has archived from a fresh listing: the same content is already there, other content is refused', async () => {
    const name = '000000010000000000000002';
    const file = path.join(pgWal, name);
    fs.writeFileSync(file, segment(2));
    const first = await push(file);
    expect(first.code, first.stderr).toBe(0);
    expect(JSON.parse(first.stdout)).toMatchObject({ via: 'agent', already: false });
    const again = await push(file);
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ via: 'agent', already: true, bytes_sent: 0 });
    fs.writeFileSync(file, segment(2));
    const other = await push(file);
    expect(other.code).not.toBe(0);
    expect(other.stderr).toMatch(/already archived .*different content/);
    const snaps = JSON.parse((await runKeep(['snapshots', '--source', 'db', '--json'], env)).stdout) as { tags: string[] }[];
    expect(snaps.filter((s) => s.tags.includes(`wal:${name}`))).toHaveLength(1);
  });

  it("opens the next segment's session ahead: a push uploads into a session keepd opened before it came", async () => {
    const lines = () => keepd.output().split('\n');
    const isOpened = (l: string) => l.includes('"msg":"session opened"') && l.includes('"source":"db"');
    const committedAt = (ls: string[], snapshot: string) => ls.findIndex((l) => l.includes('"msg":"snapshot committed"') && l.includes(snapshot));
    /** a session opened after `snapshot` was committed (the spare for the next segment), waited for */
    const spareAfter = async (snapshot: string) => {
      const until = Date.now() + 60_000;
      for (;;) {
        const ls = lines();
        const at = committedAt(ls, snapshot);
        if (at >= 0 && ls.slice(at).some(isOpened)) return;
        if (Date.now() > until) throw new Error(`no session opened after ${snapshot}:\n${ls.slice(-20).join('\n')}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    const pushNew = async (name: string) => {
      const file = path.join(pgWal, name);
      fs.writeFileSync(file, segment(1));
      const r = await push(file);
      expect(r.code, r.stderr).toBe(0);
      return JSON.parse(r.stdout).snapshot as string;
    };
    const a = await pushNew('000000010000000000000003');
    await spareAfter(a);
    const sessionOf = (l: string) => /"session":"([0-9a-f]+)"/.exec(l)?.[1];
    const seen = new Set(lines().filter(isOpened).map(sessionOf));
    const b = await pushNew('000000010000000000000004');
    await spareAfter(b);
    const ls = lines();
    const opens = ls.flatMap((l, i) => (isOpened(l) && !seen.has(sessionOf(l)) ? [i] : []));
    // the one session opened since A's spare is the next spare, after B's commit: B uploaded into A's spare
    expect(opens.map((i) => i > committedAt(ls, b)), ls.join('\n')).toEqual([true]);
  });

  it('closes its spare session when it stops: keepd ends it then (its audit record is written at its end), not at its lease', async () => {
    const opened = keepd.output().split('\n').filter((l) => l.includes('"msg":"session opened"') && l.includes('"source":"db"'));
    const spare = /"session":"([0-9a-f]+)"/.exec(opened.at(-1)!)![1];
    agent.child.kill('SIGTERM');
    expect((await agent.exited).code).toBe(0);
    const ended = async () => ((await keepdJson(['audit', 'list', '--data', path.join(dir, 'keepd'), '--event', 'session.open'])) as { fields: { session: string } }[]).some((r) => r.fields.session === spare);
    const until = Date.now() + 60_000;
    while (!(await ended()) && Date.now() < until) await new Promise((r) => setTimeout(r, 200));
    expect(await ended()).toBe(true);
  });
});
