/**
 * The setting of the retention tests (snapshots-group-by, forget-grpc, tag):
 * a real keepd with an agent token for one source and an admin token, and a
 * source that backs up /etc and /home separately.
 */
import fs from 'node:fs';
import path from 'node:path';
import { agentEnv, createToken, Keepd, keepdInit, keepJson, startKeepd, Token } from './keepd-harness.js';

export interface AdminKeepd {
  data: string;
  keepd: Keepd;
  agent: Token;
  admin: Token;
}

/** keepd on DIR/data, an agent token for `source`, an admin token; the repository initialised (by the admin). */
export async function keepdWithAdmin(dir: string, source: string): Promise<AdminKeepd> {
  const data = path.join(dir, 'data');
  await keepdInit(data);
  const agent = await createToken(data, 'agent', { sources: [source] });
  const admin = await createToken(data, 'admin');
  const keepd = await startKeepd(data);
  await keepJson(['init', '--kdf-cost', '12'], agentEnv(keepd, admin.token));
  return { data, keepd, agent, admin };
}

/** Source `source` backs up DIR/etc once, then DIR/home three times (a new file each time, tagged `homeTags(i)`). */
export async function etcThenHome(dir: string, k: AdminKeepd, source: string, homeTags: (i: number) => string[] = () => []) {
  const etc = path.join(dir, 'etc');
  const home = path.join(dir, 'home');
  fs.mkdirSync(etc);
  fs.mkdirSync(home);
  fs.writeFileSync(path.join(etc, 'secret-config-name.conf'), 'setting = 1\n');
  const env = agentEnv(k.keepd, k.agent.token);
  const etcSnap: string = (await keepJson(['backup', etc, '--source', source], env)).snapshot;
  const homeSnaps: string[] = [];
  for (let i = 0; i < 3; i++) {
    fs.writeFileSync(path.join(home, `notes-${i}.txt`), `day ${i}\n`);
    homeSnaps.push((await keepJson(['backup', home, '--source', source, ...homeTags(i).flatMap((t) => ['--tag', t])], env)).snapshot);
  }
  return { etc, home, etcSnap, homeSnaps };
}
